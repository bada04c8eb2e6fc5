//! A webhook receiver on a random local port: it keeps every delivery it gets and
//! answers each with the status its script names.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use serde_json::Value;
use tokio::sync::Notify;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
    }

    /// `webhook-id`.
    pub fn id(&self) -> &str {
        self.header("webhook-id")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `webhook-signature` is Standard Webhooks' signature of this delivery under
    /// `secret` (`whsec_…`), computed here from the specification.
    pub fn signed_with(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        let signed = format!("{}.{}.", self.id(), self.header("webhook-timestamp"));
        mac.update(signed.as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        (self.header("webhook-signature").split(' ')).any(|s| s == expected)
    }
}

type Script = dyn Fn(&Received, usize) -> u16 + Send + Sync;

struct Shared {
    received: Mutex<Vec<Received>>,
    /// The ids of the deliveries being answered, and those that arrived while a delivery
    /// with the same id was still being answered.
    in_flight: Mutex<(HashSet<String>, Vec<String>)>,
    arrived: Notify,
    script: Box<Script>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(|_, _| 200).await
    }

    /// Answers the `n`th delivery (from 0, counted when it arrives) with `script(delivery, n)`,
    /// which may sleep to make the answer slow.
    pub async fn start(script: impl Fn(&Received, usize) -> u16 + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            in_flight: Mutex::default(),
            arrived: Notify::new(),
            script: Box::new(script),
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, task }
    }

    /// The ids of deliveries that arrived while one with the same id was in flight.
    pub fn overlapping(&self) -> Vec<String> {
        self.shared.in_flight.lock().unwrap().1.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The deliveries once there are at least `n`; panics after `within`, saying what came.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let bodies: Vec<Value> = received.iter().map(Received::json).collect();
                panic!(
                    "{} of {n} deliveries within {within:?}: {bodies:#?}",
                    received.len()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut received = Received {
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        answered: 0,
    };
    let id = received
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok());
    let id = id.unwrap_or_default().to_owned();
    {
        let mut in_flight = shared.in_flight.lock().unwrap();
        if !in_flight.0.insert(id.clone()) {
            in_flight.1.push(id.clone());
        }
    }
    let n = shared.received.lock().unwrap().len();
    // On a thread of its own: a script that sleeps holds up no other delivery.
    received.answered = {
        let (shared, received) = (shared.clone(), received.clone());
        tokio::task::spawn_blocking(move || (shared.script)(&received, n))
            .await
            .unwrap()
    };
    shared.received.lock().unwrap().push(received.clone());
    shared.in_flight.lock().unwrap().0.remove(&id);
    let answer = received.answered;
    shared.arrived.notify_waiters();
    StatusCode::from_u16(answer).unwrap()
}
