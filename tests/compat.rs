//! Compatibility with the official Python clients: each script drives a running server
//! and asserts what the client returns. The clients are installed into a virtualenv
//! under the target directory, from `tests/compat/requirements.txt`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Backend, TestServer};

/// The virtualenv's python, created and filled on first use.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let requirements = root.join("tests/compat/requirements.txt");
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-venv");
        let python = venv.join("bin/python");
        let marker = venv.join("installed-requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("requirements");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
            run(Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv));
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements));
            std::fs::write(&marker, wanted).expect("marker");
        }
        python
    })
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(status.success(), "{command:?} failed");
}

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
