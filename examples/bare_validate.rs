//! The benchmark's baseline: the limit of the HTTP stack. A bare axum handler that parses
//! the same JSON body as `POST /licenses/validate` and answers a constant, with no
//! storage and no middleware. Usage: `bare_validate ADDR`.

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ValidateRequest {
    license_key: String,
    #[serde(default)]
    license_key_instance_id: Option<String>,
}

async fn validate(Json(_request): Json<ValidateRequest>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"valid": true}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18182".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("listening on http://{address}");
    axum::serve(
        listener,
        Router::new().route("/licenses/validate", post(validate)),
    )
    .await
}
