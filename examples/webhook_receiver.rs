//! The webhook benchmark's receiver: answers 200 to any POST and counts them, without
//! checking signatures; `GET /count` answers the count. Usage: `webhook_receiver ADDR`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::routing::get;

static RECEIVED: AtomicU64 = AtomicU64::new(0);

async fn receive(method: Method, _body: Bytes) -> StatusCode {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn count() -> String {
    RECEIVED.load(Ordering::Relaxed).to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18184".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("listening on http://{address}");
    axum::serve(
        listener,
        Router::new().route("/count", get(count)).fallback(receive),
    )
    .await
}
