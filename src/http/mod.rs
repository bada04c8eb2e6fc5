//! Where requests enter: the router, which joins the routes of the Togai-compatible API
//! (`togai/`), of the Dodo Payments-compatible one (`dodo/`) and the operators', each
//! inside the middleware (`envelope.rs`); and [`serve`], which runs the server on a
//! listener until a shutdown signal.

mod console;
mod dodo;
mod envelope;
pub mod error;
pub mod extract;
pub mod openapi;
mod ops;
mod page_token;
pub mod rate_limit;
mod signing;
mod state;
mod togai;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use envelope::{Envelope, ShapeOf};
use error::ErrorShape;
pub use state::{AppState, ServerSettings};

/// The whole HTTP application: each API's routes, and the operators', inside the
/// middleware, which writes their errors in the shape of the router they belong to.
pub fn router(state: AppState, settings: &ServerSettings) -> Router {
    let envelope = Envelope::new(settings.request_timeout);
    let mut operations = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(openapi::docs());
    if settings.metrics_on_main {
        operations = operations.route("/metrics", get(ops::metrics));
    }
    let enveloped = |routes: Router<AppState>, shape: ShapeOf| {
        routes.layer(
            ServiceBuilder::new()
                .layer(envelope.with_shape(shape))
                .layer(CatchPanicLayer::new()),
        )
    };
    Router::new()
        .merge(enveloped(togai::routes(), |_| ErrorShape::MessageOnly))
        .merge(enveloped(dodo::routes(), |_| ErrorShape::CodeAndMessage))
        .merge(
            enveloped(dodo::public_routes(), |_| ErrorShape::CodeAndMessage).layer(
                signing::SignResponses::new(
                    state.clone(),
                    envelope.with_shape(|_| ErrorShape::CodeAndMessage),
                ),
            ),
        )
        .merge(enveloped(operations, |_| ErrorShape::CodeAndMessage))
        // The console renders its own pages, errors included: around them, the envelope
        // of pages (request ids, the timeout, metrics, logs) and the body limit.
        .merge(
            console::routes()
                .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
                .layer(CatchPanicLayer::new())
                .layer(from_fn_with_state(
                    (envelope.clone(), console::error_page as envelope::ErrorPage),
                    envelope::around_pages,
                )),
        )
        .merge(enveloped(unknown_routes(), shape_of_unknown_route))
        .with_state(state)
}

/// A router with only `/metrics`, for `--metrics-bind`.
pub fn metrics_router(state: AppState, settings: &ServerSettings) -> Router {
    let envelope = Envelope::new(settings.request_timeout);
    Router::new()
        .route("/metrics", get(ops::metrics))
        .layer(envelope.with_shape(|_| ErrorShape::CodeAndMessage))
        .merge(unknown_routes().layer(envelope.with_shape(shape_of_unknown_route)))
        .with_state(state)
}

/// What answers a path that no route matches: 404.
fn unknown_routes() -> Router<AppState> {
    Router::new().fallback(ops::no_route)
}

/// The shape of the errors of a path no route matches: that of the API whose paths it is
/// under, so that an unknown route looks like the routes beside it.
fn shape_of_unknown_route(path: &str) -> ErrorShape {
    if togai::owns(path) {
        ErrorShape::MessageOnly
    } else {
        ErrorShape::CodeAndMessage
    }
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
