//! What operators use: liveness, readiness and Prometheus metrics (the OpenAPI document
//! is served by [`super::openapi`]); the answer to an unknown route; and the counting of
//! requests for the metrics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::domain::time::Timestamp;
use crate::jobs::backup::BACKUPS;
use crate::jobs::dispatcher::DELIVERIES;

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

/// How long a scrape waits for the outbox's lag.
const LAG_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Prometheus text: requests by route and status, latency, database connections, webhook
/// attempts by result (`webhook_deliveries_total`: delivered, retrying, failed) and the
/// age of the oldest message not yet delivered; with `--sqlite-backup`, when the last
/// backup was written and how many failed.
#[utoipa::path(get, path = "/metrics", tag = "Operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Installs the recorder before the gauges are set, on a process's first scrape too.
    let recorder = prometheus();
    let usage = state.store.connections();
    metrics::gauge!("db_connections", "state" => "idle").set(usage.idle as f64);
    metrics::gauge!("db_connections", "state" => "in_use").set(usage.in_use() as f64);
    metrics::gauge!("db_connections", "state" => "shared").set(usage.shared as f64);
    let deliveries = &DELIVERIES;
    for (result, count) in [
        ("delivered", &deliveries.delivered),
        ("retrying", &deliveries.retrying),
        ("failed", &deliveries.failed),
    ] {
        metrics::counter!("webhook_deliveries_total", "result" => result)
            .absolute(count.load(Ordering::Relaxed));
    }
    if BACKUPS.enabled.load(Ordering::Relaxed) {
        let last = BACKUPS.last_success.load(Ordering::Relaxed);
        metrics::gauge!("sqlite_backup_last_success_timestamp_seconds").set(last as f64);
        metrics::counter!("sqlite_backup_failures_total")
            .absolute(BACKUPS.failures.load(Ordering::Relaxed));
    }
    // Unknown while the database does not answer, or answers too slowly for a scrape
    // (Prometheus gives up after 10 s by default): the gauge keeps its last value.
    let oldest = tokio::time::timeout(LAG_READ_LIMIT, state.store.oldest_undelivered()).await;
    if let Ok(Ok(oldest)) = oldest {
        let age = oldest.map_or(0.0, |at| {
            (Timestamp::now().micros() - at.micros()).max(0) as f64 / 1e6
        });
        metrics::gauge!("webhook_oldest_undelivered_seconds").set(age);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        recorder.render(),
    )
        .into_response()
}

pub async fn no_route(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// The `# HELP` line of each metric.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "Requests answered, by method, route and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its answer, by method and route."
    );
    describe_gauge!(
        "db_connections",
        "This process's database connections: idle and in use in the pool, and shared by point reads."
    );
    describe_counter!(
        "webhook_deliveries_total",
        "Webhook attempts by this process since it started, by result: delivered, retrying (failed, tried again later), failed (given up)."
    );
    describe_gauge!(
        "sqlite_backup_last_success_timestamp_seconds",
        "With --sqlite-backup: when the last backup was written, in Unix seconds; 0 before the first."
    );
    describe_counter!(
        "sqlite_backup_failures_total",
        "With --sqlite-backup: backups that could not be written since the process started."
    );
    describe_gauge!(
        "webhook_oldest_undelivered_seconds",
        Unit::Seconds,
        "Age of the oldest webhook message not yet delivered to an enabled endpoint; 0 when none waits."
    );
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
        describe_metrics();
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
struct RequestMetrics {
    method: &'static str,
    status: StatusCode,
    count: Counter,
    latency: Histogram,
}

/// Runs `use_them` on the metric handles of one route, method and status. Each thread
/// keeps the handles it has used: looking a metric up by its labels allocates and hashes
/// them, and one table shared by all threads would have every request write to its
/// lock's and its handles' reference counts, which the cores would pass back and forth.
fn with_request_metrics(
    method: &'static str,
    route: &str,
    status: StatusCode,
    use_them: impl FnOnce(&RequestMetrics),
) {
    thread_local! {
        static HANDLES: RefCell<HashMap<String, Vec<RequestMetrics>>> = RefCell::default();
    }
    HANDLES.with_borrow_mut(|handles| {
        let known = handles.get(route).and_then(|list| {
            list.iter()
                .find(|m| m.method == method && m.status == status)
        });
        if let Some(known) = known {
            use_them(known);
            return;
        }
        let _ = prometheus();
        let route_label = route.to_owned();
        // The recorder hands every thread the same metric for the same labels.
        let registered = RequestMetrics {
            method,
            status,
            count: metrics::counter!("http_requests_total", "method" => method,
                "route" => route_label.clone(), "status" => status.as_u16().to_string()),
            latency: metrics::histogram!("http_request_duration_seconds",
                "method" => method, "route" => route_label),
        };
        use_them(&registered);
        handles
            .entry(route.to_owned())
            .or_default()
            .push(registered);
    });
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
    with_request_metrics(method_label(method), route, status, |metrics| {
        metrics.count.increment(1);
        metrics.latency.record(elapsed.as_secs_f64());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_counted_on_different_threads_add_up_in_one_series() {
        let route = "/threads-add-up";
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        with_request_metrics("GET", route, StatusCode::OK, |metrics| {
                            metrics.count.increment(1);
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = prometheus().render();
        let series =
            format!("http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}} 20");
        assert!(text.contains(&series), "{text}");
    }
}
