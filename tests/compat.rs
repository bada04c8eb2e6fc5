//! Compatibility with the official Python and JavaScript clients: each script drives a
//! running server and asserts what the client returns.

mod common;

use std::path::Path;

use common::node::node_modules;
use common::python::python;
use common::{Backend, TestServer};

/// Runs `script` of `tests/compat` with `program` against a new server on `backend`.
async fn run_script(backend: Backend, program: &Path, script: &str, env: &[(&str, &Path)]) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let read_only = server.new_key("alpha", true).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    let output = tokio::process::Command::new(program)
        .arg(&script)
        .env("LICENSED_URL", &server.url)
        .env("LICENSED_API_KEY", &server.key)
        .env("LICENSED_READ_ONLY_KEY", &read_only)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} on {backend:?} failed:\n{stdout}\n{stderr}",
        script.display()
    );
    println!("{stdout}");
}

async fn run_python(backend: Backend, script: &str) {
    run_script(backend, python(), script, &[]).await;
}

/// The JavaScript client's script, with `node` finding the client through `NODE_PATH`.
async fn run_node(backend: Backend, script: &str) {
    let Some(modules) = node_modules() else {
        return;
    };
    run_script(
        backend,
        Path::new("node"),
        script,
        &[("NODE_PATH", modules)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn togai_client_on_sqlite() {
    run_python(Backend::Sqlite, "togai_client_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn togai_client_on_postgres() {
    run_python(Backend::Postgres, "togai_client_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_on_sqlite() {
    run_python(Backend::Sqlite, "dodopayments_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_on_postgres() {
    run_python(Backend::Postgres, "dodopayments_test.py").await;
}

/// A delivery of every event type, received on 127.0.0.1 and verified with the Python
/// client's `webhooks.unwrap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_webhook_events_on_sqlite() {
    run_python(Backend::Sqlite, "webhook_events_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_webhook_events_on_postgres() {
    run_python(Backend::Postgres, "webhook_events_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_js_on_sqlite() {
    run_node(Backend::Sqlite, "dodopayments_test.cjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_js_on_postgres() {
    run_node(Backend::Postgres, "dodopayments_test.cjs").await;
}

/// License files and signed answers, checked with Python's `cryptography` rather than
/// with our own verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_files_with_python_cryptography_on_sqlite() {
    run_python(Backend::Sqlite, "license_file_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_files_with_python_cryptography_on_postgres() {
    run_python(Backend::Postgres, "license_file_test.py").await;
}
