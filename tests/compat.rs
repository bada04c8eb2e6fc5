//! Compatibility with the official Python clients: each script drives a running server
//! and asserts what the client returns.

mod common;

use std::path::Path;

use common::python::python;
use common::{Backend, TestServer};

async fn run_script(backend: Backend, script: &str) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let read_only = server.new_key("alpha", true).await;
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .env("LICENSED_URL", &server.url)
        .env("LICENSED_API_KEY", &server.key)
        .env("LICENSED_READ_ONLY_KEY", &read_only)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} on {backend:?} failed:\n{stdout}\n{stderr}",
        script.display()
    );
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn togai_client_on_sqlite() {
    run_script(Backend::Sqlite, "togai_client_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn togai_client_on_postgres() {
    run_script(Backend::Postgres, "togai_client_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_on_sqlite() {
    run_script(Backend::Sqlite, "dodopayments_test.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dodopayments_on_postgres() {
    run_script(Backend::Postgres, "dodopayments_test.py").await;
}
