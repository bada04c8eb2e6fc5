//! What operators use: liveness, readiness, Prometheus metrics, the OpenAPI document and
//! its rendering.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_scalar::{Scalar, Servable};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::openapi::ApiDoc;

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    status: &'static str,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "Operations",
    responses((status = 200, description = "The process is alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// 200 only when the database answers.
#[utoipa::path(get, path = "/readyz", tag = "Operations",
    responses(
        (status = 200, description = "The database answers", body = Status),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Status { status: "ready" }))
}

/// Prometheus text: requests by route and status, latency, database connections.
#[utoipa::path(get, path = "/metrics", tag = "Operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let usage = state.store.connections();
    metrics::gauge!("db_connections", "state" => "idle").set(usage.idle as f64);
    metrics::gauge!("db_connections", "state" => "in_use")
        .set(usage.open.saturating_sub(usage.idle) as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// `/docs`: the OpenAPI document rendered for people.
pub fn docs() -> Scalar<utoipa::openapi::OpenApi> {
    Scalar::with_url("/docs", ApiDoc::openapi())
}

pub async fn no_route(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// One recorder per process, shared by every server it runs.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; its handle then renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        // A histogram keeps every sample until upkeep folds it into its buckets: without
        // this, memory grows with each request for as long as nobody scrapes `/metrics`.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(METRICS_UPKEEP);
                    upkeep.run_upkeep();
                }
            })
            .ok();
        handle
    })
}

const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The metrics of one route, method and status.
#[derive(Clone)]
struct RequestMetrics {
    method: &'static str,
    status: StatusCode,
    count: Counter,
    latency: Histogram,
}

/// Metric handles registered once per route, method and status, because looking a
/// metric up by its labels allocates and hashes them: per route, a short list.
fn request_metrics(method: &'static str, route: &str, status: StatusCode) -> RequestMetrics {
    static HANDLES: OnceLock<RwLock<HashMap<String, Vec<RequestMetrics>>>> = OnceLock::new();
    let handles = HANDLES.get_or_init(RwLock::default);
    let find = |list: &Vec<RequestMetrics>| {
        list.iter()
            .find(|m| m.method == method && m.status == status)
            .cloned()
    };
    if let Some(found) = handles
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(route)
        .and_then(find)
    {
        return found;
    }
    let _ = prometheus();
    let route_label = route.to_owned();
    let registered = RequestMetrics {
        method,
        status,
        count: metrics::counter!("http_requests_total", "method" => method,
            "route" => route_label.clone(), "status" => status.as_u16().to_string()),
        latency: metrics::histogram!("http_request_duration_seconds",
            "method" => method, "route" => route_label),
    };
    handles
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(route.to_owned())
        .or_default()
        .push(registered.clone());
    registered
}

/// A client may send any method name: those outside HTTP's own share one label, so
/// that they cannot add metrics without end.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", |known| known.as_str())
}

/// Counts a finished request and its latency.
pub fn record(method: &Method, route: Option<&MatchedPath>, status: StatusCode, elapsed: Duration) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let metrics = request_metrics(method_label(method), route, status);
    metrics.count.increment(1);
    metrics.latency.record(elapsed.as_secs_f64());
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("request failed with 500");
    }
}
