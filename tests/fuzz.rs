//! Schemathesis against the server's own `/openapi.json`, authenticated, on both
//! backends: no 5xx, every status, content type and body as documented, and schema-
//! violating input refused.

mod common;

use std::time::Duration;

use common::python::python;
use common::{Backend, TestServer};
use licensed::http::ServerSettings;

/// Seconds of fuzzing per backend; both together stay under three minutes.
const BUDGET_SECS: u64 = 75;

async fn fuzz(backend: Backend) {
    // The per-IP limit would turn the fuzzer's burst into 429s; it has tests of its own.
    let settings = ServerSettings {
        public_rate_limit: 0,
        ..Default::default()
    };
    let Some(server) = TestServer::start_with(backend, settings).await else {
        return;
    };
    let python = python();
    let st = python.with_file_name("st");
    let report = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let run = tokio::process::Command::new(st)
        .args(["--config-file", config, "run"])
        .arg(format!("{}/openapi.json", server.url))
        .args(["--header", &format!("Authorization: Bearer {}", server.key)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection"])
        .args(["--max-time", &BUDGET_SECS.to_string()])
        // One worker: with several threads, CPython 3.11's AST constructor (which
        // Hypothesis uses to describe strategies) fails at random ("recursion depth
        // mismatch"), a fault of the tool rather than a finding.
        .args(["--seed", "20261123", "--workers", "1"])
        .args(["--report", "junit", "--report-dir"])
        .arg(report.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(BUDGET_SECS + 60), run)
        .await
        .expect("schemathesis ran over its budget")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures on {backend:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Vec<&str> = stdout.lines().rev().take(20).collect();
    println!(
        "{backend:?}: {}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_on_sqlite() {
    fuzz(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_on_postgres() {
    fuzz(Backend::Postgres).await;
}
