//! One webhook delivery attempt over HTTP (SPEC §8): a signed Standard Webhooks `POST`,
//! a bounded wait, a bounded look at the answer, no redirect and no proxy, and, when
//! asked, no connection to a private address. Which message to attempt, and what an
//! answer means for it, is the dispatcher's business.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::{Instant, timeout_at};

use crate::domain::time::Timestamp;
use crate::domain::webhooks::{WebhookHeaders, WebhookSecret, signature};

/// How much of an answer's body is kept, to show why an endpoint refused a delivery.
const EXCERPT_BYTES: usize = 1024;

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryOptions {
    /// Refuse endpoints that are, or resolve to, loopback, private, link-local and other
    /// non-public addresses (`--webhook-deny-private`).
    pub deny_private: bool,
    /// How long an attempt may take, from connecting until the answer's headers.
    pub timeout: Duration,
}

impl DeliveryOptions {
    /// The wait SPEC §8 gives an endpoint: a 2xx within 15 s is delivered.
    pub const TIMEOUT: Duration = Duration::from_secs(15);
}

/// The HTTP client that makes delivery attempts; clones share one pool of connections.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    options: DeliveryOptions,
}

/// The HTTP client could not be set up (its TLS configuration, typically).
#[derive(Debug, thiserror::Error)]
#[error("the webhook delivery client could not be built: {0}")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// One attempt to deliver one message to one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub url: &'a str,
    /// `msg_…`, the same on every attempt of a message.
    pub msg_id: &'a str,
    /// The event as JSON.
    pub body: &'a [u8],
    pub secret: &'a WebhookSecret,
    /// The endpoint's custom headers.
    pub headers: &'a BTreeMap<String, String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered (any status, 2xx or not); `excerpt`: at most the first KiB
    /// of the answer's body as text, read no further than that.
    Answered { status: u16, excerpt: String },
    /// No answer: connection refused, DNS failure, TLS error, timeout, refused private
    /// address, ...; `error` says which, briefly, for the people operating the endpoint.
    Failed { error: String },
}

impl Attempt {
    /// Whether the endpoint took the message (a 2xx).
    pub fn delivered(&self) -> bool {
        matches!(self, Attempt::Answered { status, .. } if (200..300).contains(status))
    }

    /// Whether the endpoint asked never to be called again (410 Gone).
    pub fn gone(&self) -> bool {
        matches!(self, Attempt::Answered { status: 410, .. })
    }
}

impl DeliveryClient {
    pub fn new(options: DeliveryOptions) -> Result<Self, ClientBuildError> {
        let mut builder = reqwest::Client::builder()
            // A 3xx is an answer like any other: following it could lead anywhere,
            // including to an address `deny_private` refuses.
            .redirect(reqwest::redirect::Policy::none())
            // The address connected to is the endpoint's own, which is what
            // `deny_private` checks.
            .no_proxy()
            .user_agent(concat!(
                "licensed/",
                env!("CARGO_PKG_VERSION"),
                " (webhooks)"
            ));
        if options.deny_private {
            builder = builder.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        let http = builder.build().map_err(ClientBuildError)?;
        Ok(Self { http, options })
    }

    /// Makes one attempt; never takes much longer than the timeout.
    pub async fn attempt(&self, delivery: &Delivery<'_>) -> Attempt {
        let deadline = Instant::now() + self.options.timeout;
        let request = match self.request(delivery) {
            Ok(request) => request,
            Err(error) => return Attempt::Failed { error },
        };
        let response = match timeout_at(deadline, self.http.execute(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return Attempt::Failed {
                    error: describe(&error),
                };
            }
            Err(_) => {
                return Attempt::Failed {
                    error: format!("timed out after {}", Wait(self.options.timeout)),
                };
            }
        };
        let status = response.status().as_u16();
        let excerpt = excerpt(response, deadline).await;
        Attempt::Answered { status, excerpt }
    }

    fn request(&self, delivery: &Delivery<'_>) -> Result<reqwest::Request, String> {
        let url = reqwest::Url::parse(delivery.url)
            .map_err(|error| format!("the URL is not valid: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the URL is neither http nor https".into());
        }
        if self.options.deny_private {
            // An address in the URL is connected to without asking the resolver. The URL
            // parser has already read every IPv4 spelling (`2130706433`, `0x7f.1`) as one.
            let literal = url
                .host_str()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|host| host.parse::<IpAddr>().ok());
            if let Some(refused) = literal.and_then(|ip| Refused::check(ip, None)) {
                return Err(refused.to_string());
            }
        }
        let mut headers = HeaderMap::with_capacity(delivery.headers.len() + 4);
        for (name, value) in delivery.headers {
            if WebhookHeaders::RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("the custom header name `{name}` is not valid"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of the custom header `{name}` is not valid"))?;
            headers.insert(name, value);
        }
        let timestamp = Timestamp::now().micros().div_euclid(1_000_000);
        let signed = signature(delivery.secret, delivery.msg_id, timestamp, delivery.body);
        let msg_id = HeaderValue::from_str(delivery.msg_id)
            .map_err(|_| format!("the message id `{}` is not valid", delivery.msg_id))?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("webhook-id", msg_id);
        headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signed).expect("`v1,` and base64 are valid in a header"),
        );

        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        *request.headers_mut() = headers;
        *request.body_mut() = Some(delivery.body.to_vec().into());
        Ok(request)
    }
}

/// The first KiB of an answer's body as text, read until the deadline at the latest.
/// What was read is kept when the body fails or stalls: the status is the answer.
async fn excerpt(mut response: reqwest::Response, deadline: Instant) -> String {
    let mut kept = Vec::new();
    let mut cut = false;
    while kept.len() < EXCERPT_BYTES {
        let Ok(Ok(Some(chunk))) = timeout_at(deadline, response.chunk()).await else {
            break;
        };
        let room = EXCERPT_BYTES - kept.len();
        cut = chunk.len() > room;
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    lossy_text(&kept, cut)
}

/// Bytes as text, invalid UTF-8 shown as U+FFFD; a character cut in two by the bound is
/// left out rather than shown as one.
fn lossy_text(bytes: &[u8], cut: bool) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        text.push_str(chunk.valid());
        let at_the_cut = cut && chunks.peek().is_none();
        if !chunk.invalid().is_empty() && !at_the_cut {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    text
}

/// A short reason why a request got no answer, without the URL (the endpoint's owner
/// knows it) and without the layers of wrapping reqwest and hyper add.
fn describe(error: &reqwest::Error) -> String {
    let causes = std::iter::successors(
        std::error::Error::source(error),
        |cause: &&(dyn std::error::Error + 'static)| cause.source(),
    );
    if let Some(refused) = causes
        .clone()
        .find_map(|cause| cause.downcast_ref::<Refused>())
    {
        return refused.to_string();
    }
    let dns = causes.clone().any(|cause| cause.to_string() == "dns error");
    let tls = causes.clone().any(is_tls);
    let root = causes
        .last()
        .map_or_else(|| error.to_string(), |cause| cause.to_string());
    if dns {
        format!("could not resolve the host: {root}")
    } else if tls {
        format!("TLS failed: {root}")
    } else if error.is_connect() {
        format!("could not connect: {root}")
    } else {
        format!("no answer: {root}")
    }
}

/// Whether an error is rustls's, perhaps inside the I/O errors that carry it.
fn is_tls(mut error: &(dyn std::error::Error + 'static)) -> bool {
    while let Some(io) = error.downcast_ref::<std::io::Error>() {
        match io.get_ref() {
            Some(inner) => error = inner,
            None => return false,
        }
    }
    error.is::<rustls::Error>()
}

/// A duration as an operator would write it: `15 s`, `300 ms`.
struct Wait(Duration);

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}

/// A delivery refused by `deny_private`: the address that was not public, named when the
/// URL gave it; when it was resolved from a name, only the name, since the addresses that
/// the server's resolver gives for names inside its network are not the tenant's to learn.
#[derive(Debug)]
struct Refused {
    ip: IpAddr,
    kind: &'static str,
    name: Option<String>,
}

impl Refused {
    fn check(ip: IpAddr, name: Option<&str>) -> Option<Self> {
        non_public_kind(ip).map(|kind| Refused {
            ip,
            kind,
            name: name.map(str::to_owned),
        })
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Refused { ip, kind, name } = self;
        match name {
            Some(name) => write!(f, "refused: {name} does not resolve to a public address"),
            None => write!(f, "refused: {ip} is not a public address ({kind})"),
        }
    }
}

impl std::error::Error for Refused {}

/// Resolves names with the system resolver and keeps only public addresses, so that the
/// address connected to is checked, not just the name in the URL.
struct PublicAddressesOnly;

impl Resolve for PublicAddressesOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut refused = None;
            let public: Vec<SocketAddr> = resolved
                .filter(|address| match Refused::check(address.ip(), Some(&host)) {
                    Some(this) => {
                        refused.get_or_insert(this);
                        false
                    }
                    None => true,
                })
                .collect();
            match refused {
                Some(refused) if public.is_empty() => Err(refused.into()),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

/// What kind of non-public address `ip` is, or `None` if it is public. IPv6 forms that
/// carry an IPv4 address (mapped, translated, compatible, NAT64, 6to4) are judged by
/// that address.
fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => non_public_v6(ip),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, ..) => "\"this network\"",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let carried_v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
    Some(match segments {
        // IPv4-compatible (`::a.b.c.d`, deprecated), IPv4-translated (`::ffff:0:a.b.c.d`)
        // and NAT64's well-known prefix.
        [0, 0, 0, 0, 0, 0, ..] | [0, 0, 0, 0, 0xffff, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            return non_public_v4(carried_v4);
        }
        // 6to4: the IPv4 address follows the prefix.
        [0x2002, high, low, ..] => {
            return non_public_v4(Ipv4Addr::from(((high as u32) << 16) | low as u32));
        }
        [0x64, 0xff9b, 1, ..] => "local NAT64",
        [0x100, 0, 0, 0, ..] => "discard-only",
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..] => "documentation",
        [0x2001, 2, 0, ..] => "benchmarking",
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique-local",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use axum::body::{Body, Bytes};
    use axum::http::{Request, Response, StatusCode};
    use hmac::Mac;
    use tokio::sync::mpsc;

    use super::*;

    /// What a test receiver does with a request.
    #[derive(Clone)]
    enum Answer {
        Status(u16, &'static str),
        RedirectTo(String),
        Never,
        /// 10 MB of body.
        Huge,
        /// 64 KiB of body, then nothing more, ever.
        Stalls,
    }

    impl Answer {
        async fn respond(self) -> Response<Body> {
            let status = |code: u16| StatusCode::from_u16(code).unwrap();
            match self {
                Answer::Status(code, body) => Response::builder()
                    .status(status(code))
                    .body(Body::from(body))
                    .unwrap(),
                Answer::RedirectTo(url) => Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", url)
                    .body(Body::empty())
                    .unwrap(),
                Answer::Never => std::future::pending().await,
                Answer::Huge => Response::new(Body::from(vec![b'x'; 10_000_000])),
                Answer::Stalls => {
                    let first = Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 64 * 1024]));
                    let stream = futures::StreamExt::chain(
                        futures::stream::once(async { first }),
                        futures::stream::pending(),
                    );
                    Response::new(Body::from_stream(stream))
                }
            }
        }
    }

    /// A request as a test receiver got it.
    struct Received {
        headers: HeaderMap,
        body: Vec<u8>,
    }

    /// A local HTTP server that records each request and answers as told.
    struct Receiver {
        address: SocketAddr,
        requests: mpsc::UnboundedReceiver<Received>,
    }

    impl Receiver {
        async fn start(bind: &str, answer: Answer) -> Self {
            let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
            let address = listener.local_addr().unwrap();
            let (sender, requests) = mpsc::unbounded_channel();
            let app = axum::Router::new().fallback(move |request: Request<Body>| {
                let (sender, answer) = (sender.clone(), answer.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                    let _ = sender.send(Received {
                        headers: parts.headers,
                        body: body.to_vec(),
                    });
                    answer.respond().await
                }
            });
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { address, requests }
        }

        fn url(&self) -> String {
            format!("http://{}/hook", self.address)
        }

        fn received(&mut self) -> Vec<Received> {
            std::iter::from_fn(|| self.requests.try_recv().ok()).collect()
        }
    }

    const SECRET: [u8; 32] = [42; 32];
    const BODY: &[u8] = br#"{"type":"license_key.created"}"#;

    fn client(deny_private: bool, timeout: Duration) -> DeliveryClient {
        DeliveryClient::new(DeliveryOptions {
            deny_private,
            timeout,
        })
        .unwrap()
    }

    async fn deliver(client: &DeliveryClient, url: &str, headers: &[(&str, &str)]) -> Attempt {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        client
            .attempt(&Delivery {
                url,
                msg_id: "msg_2Lz8ZQh1",
                body: BODY,
                secret: &WebhookSecret::from_bytes(SECRET),
                headers: &headers,
            })
            .await
    }

    fn header<'a>(received: &'a Received, name: &str) -> &'a str {
        let mut values = received.headers.get_all(name).iter();
        let value = values.next().unwrap_or_else(|| panic!("no `{name}`"));
        assert!(values.next().is_none(), "`{name}` sent twice");
        value.to_str().unwrap()
    }

    fn failure(attempt: Attempt) -> String {
        match attempt {
            Attempt::Failed { error } => error,
            answered => panic!("expected a failure, got {answered:?}"),
        }
    }

    #[tokio::test]
    async fn the_standard_webhooks_headers_arrive_and_the_signature_verifies() {
        let mut receiver = Receiver::start("127.0.0.1:0", Answer::Status(204, "")).await;
        let client = client(false, Duration::from_secs(5));
        let attempt = deliver(&client, &receiver.url(), &[]).await;
        assert_eq!(
            attempt,
            Attempt::Answered {
                status: 204,
                excerpt: String::new()
            }
        );
        assert!(attempt.delivered() && !attempt.gone());

        let [received] = &receiver.received()[..] else {
            panic!("expected one request")
        };
        assert_eq!(received.body, BODY);
        assert_eq!(header(received, "content-type"), "application/json");
        assert_eq!(header(received, "webhook-id"), "msg_2Lz8ZQh1");
        assert!(header(received, "user-agent").starts_with("licensed/"));
        let timestamp: i64 = header(received, "webhook-timestamp").parse().unwrap();
        let now = Timestamp::now().micros() / 1_000_000;
        assert!((now - 5..=now).contains(&timestamp), "{timestamp} vs {now}");

        // As a receiver verifies it, without this crate's signing code.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&SECRET).unwrap();
        mac.update(format!("msg_2Lz8ZQh1.{timestamp}.").as_bytes());
        mac.update(BODY);
        let expected = format!(
            "v1,{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                mac.finalize().into_bytes()
            )
        );
        assert_eq!(header(received, "webhook-signature"), expected);
    }

    #[tokio::test]
    async fn custom_headers_arrive_but_never_replace_the_ones_a_delivery_sets() {
        let mut receiver = Receiver::start("127.0.0.1:0", Answer::Status(200, "ok")).await;
        let client = client(false, Duration::from_secs(5));
        let headers = [
            ("authorization", "Bearer abc"),
            ("x-env", "prod"),
            ("webhook-id", "msg_forged"),
            ("Webhook-Signature", "v1,forged"),
            ("content-type", "text/plain"),
        ];
        assert!(
            deliver(&client, &receiver.url(), &headers)
                .await
                .delivered()
        );

        let [received] = &receiver.received()[..] else {
            panic!("expected one request")
        };
        assert_eq!(header(received, "authorization"), "Bearer abc");
        assert_eq!(header(received, "x-env"), "prod");
        assert_eq!(header(received, "webhook-id"), "msg_2Lz8ZQh1");
        assert_ne!(header(received, "webhook-signature"), "v1,forged");
        assert_eq!(header(received, "content-type"), "application/json");
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_and_is_not_followed() {
        let mut target = Receiver::start("127.0.0.1:0", Answer::Status(200, "")).await;
        let mut redirecting =
            Receiver::start("127.0.0.1:0", Answer::RedirectTo(target.url())).await;
        let client = client(false, Duration::from_secs(5));
        let attempt = deliver(&client, &redirecting.url(), &[]).await;
        assert!(matches!(attempt, Attempt::Answered { status: 302, .. }));
        assert!(!attempt.delivered());
        assert_eq!(redirecting.received().len(), 1);
        assert!(target.received().is_empty(), "the redirect was followed");
    }

    #[tokio::test]
    async fn a_410_means_gone_and_other_statuses_are_answers_with_an_excerpt() {
        let gone = Receiver::start("127.0.0.1:0", Answer::Status(410, "bye")).await;
        let broken = Receiver::start("127.0.0.1:0", Answer::Status(500, "database down")).await;
        let client = client(false, Duration::from_secs(5));

        let attempt = deliver(&client, &gone.url(), &[]).await;
        assert!(attempt.gone() && !attempt.delivered());

        let attempt = deliver(&client, &broken.url(), &[]).await;
        assert_eq!(
            attempt,
            Attempt::Answered {
                status: 500,
                excerpt: "database down".into()
            }
        );
        assert!(!attempt.gone() && !attempt.delivered());
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_fails_at_the_timeout() {
        let mut receiver = Receiver::start("127.0.0.1:0", Answer::Never).await;
        let client = client(false, Duration::from_millis(300));
        let started = StdInstant::now();
        let error = failure(deliver(&client, &receiver.url(), &[]).await);
        let took = started.elapsed();
        assert_eq!(error, "timed out after 300 ms");
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2));
        assert_eq!(receiver.received().len(), 1);
    }

    #[tokio::test]
    async fn a_long_body_is_read_only_as_far_as_the_excerpt() {
        let client = client(false, Duration::from_secs(5));
        for answer in [Answer::Huge, Answer::Stalls] {
            let receiver = Receiver::start("127.0.0.1:0", answer).await;
            let started = StdInstant::now();
            let attempt = deliver(&client, &receiver.url(), &[]).await;
            // A body read whole would take until the timeout for the one that stalls.
            assert!(started.elapsed() < Duration::from_secs(2));
            let Attempt::Answered { status, excerpt } = attempt else {
                panic!("expected an answer, got {attempt:?}")
            };
            assert_eq!(status, 200);
            assert_eq!(excerpt.len(), EXCERPT_BYTES);
            assert!(excerpt.bytes().all(|b| b == b'x' || b == b'y'));
        }
    }

    #[tokio::test]
    async fn deny_private_refuses_loopback_before_connecting_and_is_off_by_default() {
        let mut v4 = Receiver::start("127.0.0.1:0", Answer::Status(200, "")).await;
        let mut v6 = Receiver::start("[::1]:0", Answer::Status(200, "")).await;
        let (port4, port6) = (v4.address.port(), v6.address.port());
        let urls = [
            (format!("http://localhost:{port4}/"), "127.0.0.1"),
            (format!("http://127.0.0.1:{port4}/"), "127.0.0.1"),
            (format!("http://2130706433:{port4}/"), "127.0.0.1"),
            (
                format!("http://[::ffff:127.0.0.1]:{port4}/"),
                "::ffff:127.0.0.1",
            ),
            (format!("http://[::1]:{port6}/"), "::1"),
        ];
        let strict = client(true, Duration::from_secs(5));
        let open = client(false, Duration::from_secs(5));
        for (url, address) in &urls {
            let error = failure(deliver(&strict, url, &[]).await);
            assert!(error.starts_with("refused: "), "{url}: {error}");
            // A name's addresses are not the tenant's to learn; an address it wrote is.
            match url.contains("localhost") {
                true => assert!(error.ends_with("localhost does not resolve to a public address")),
                false => assert!(
                    error.contains(*address) && error.contains("loopback"),
                    "{url}: {error}"
                ),
            }
            assert!(
                v4.received().is_empty() && v6.received().is_empty(),
                "{url}"
            );

            let attempt = deliver(&open, url, &[]).await;
            assert!(attempt.delivered(), "{url}: {attempt:?}");
            assert_eq!(v4.received().len() + v6.received().len(), 1, "{url}");
        }
    }

    #[tokio::test]
    async fn a_tls_failure_is_named() {
        let plain = Receiver::start("127.0.0.1:0", Answer::Status(200, "")).await;
        let client = client(false, Duration::from_secs(5));
        let url = format!("https://{}/", plain.address);
        let error = failure(deliver(&client, &url, &[]).await);
        assert!(error.starts_with("TLS failed: "), "{error}");
    }

    #[tokio::test]
    async fn a_closed_port_or_an_unknown_host_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let client = client(false, Duration::from_secs(5));
        let error = failure(deliver(&client, &format!("http://{closed}/"), &[]).await);
        assert!(error.starts_with("could not connect: "), "{error}");
        assert!(!error.contains(&closed.to_string()), "{error}");

        // `.invalid` never resolves (RFC 6761); without a network the lookup may time out.
        let client = self::client(false, Duration::from_secs(3));
        let error = failure(deliver(&client, "http://nowhere.invalid/", &[]).await);
        assert!(
            error.starts_with("could not resolve the host: ") || error.starts_with("timed out"),
            "{error}"
        );
        let error = failure(deliver(&client, "ftp://example.com/", &[]).await);
        assert_eq!(error, "the URL is neither http nor https");
    }

    #[test]
    fn addresses_are_public_or_named_for_what_they_are() {
        let table: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("192.0.3.1", None),
            ("2606:4700:4700::1111", None),
            ("2001:4860::8888", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("::ffff:0:8.8.8.8", None),
            ("2002:808:808::1", None),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("\"this network\"")),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("10.0.0.5", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("shared (CGNAT)")),
            ("100.127.255.255", Some("shared (CGNAT)")),
            ("169.254.169.254", Some("link-local")),
            ("192.0.0.8", Some("IETF protocol")),
            ("192.0.2.1", Some("documentation")),
            ("198.51.100.1", Some("documentation")),
            ("203.0.113.1", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.5", Some("private")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::127.0.0.1", Some("loopback")),
            ("::192.168.0.1", Some("private")),
            ("64:ff9b::10.0.0.1", Some("private")),
            ("::ffff:0:10.0.0.1", Some("private")),
            ("2002:a00:1::1", Some("private")),
            ("2002:7f00:1::1", Some("loopback")),
            ("64:ff9b:1::1", Some("local NAT64")),
            ("100::1", Some("discard-only")),
            ("fc00::1", Some("unique-local")),
            ("fd12:3456::1", Some("unique-local")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
            ("2001:db8::1", Some("documentation")),
            ("3fff::1", Some("documentation")),
            ("2001:2::1", Some("benchmarking")),
        ];
        for (address, kind) in table {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(non_public_kind(ip), *kind, "{address}");
        }
    }

    #[test]
    fn a_character_cut_by_the_bound_is_left_out() {
        let euro = "€".as_bytes();
        assert_eq!(lossy_text(&[b'a', euro[0], euro[1]], true), "a");
        assert_eq!(lossy_text(&[b'a', euro[0], euro[1]], false), "a\u{FFFD}");
        assert_eq!(lossy_text(&[0xff, b'b'], true), "\u{FFFD}b");
        assert_eq!(lossy_text("a€".as_bytes(), true), "a€");
    }
}
