//! Where requests enter: the router, its middleware, and [`serve`], which runs the
//! server on a listener until a shutdown signal.

mod dodo;
mod envelope;
pub mod error;
pub mod extract;
pub mod openapi;
mod ops;
mod page_token;
pub mod rate_limit;
mod state;
mod togai;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

pub use state::{AppState, ServerSettings};

/// The whole HTTP application.
pub fn router(state: AppState, settings: &ServerSettings) -> Router {
    let mut api = Router::new()
        .merge(togai::routes())
        .merge(dodo::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(openapi::docs());
    if settings.metrics_on_main {
        api = api.route("/metrics", get(ops::metrics));
    }
    api.fallback(ops::no_route)
        .layer(
            ServiceBuilder::new()
                .layer(envelope::Envelope::new(settings.request_timeout))
                .layer(CatchPanicLayer::new()),
        )
        .with_state(state)
}

/// A router with only `/metrics`, for `--metrics-bind`.
pub fn metrics_router(state: AppState, settings: &ServerSettings) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(ops::no_route)
        .layer(envelope::Envelope::new(settings.request_timeout))
        .with_state(state)
}

/// How long a client may take to send a request's headers; slower connections are
/// closed, so idle or trickling clients cannot hold connections open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: a connection that sends nothing is then closed when its headers'
    // deadline passes, where detecting HTTP/2 first would wait for its bytes forever.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        );
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}
