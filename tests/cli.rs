//! The `licensed` binary as an operator runs it.

mod common;

use common::process::{Served, licensed};
use common::{Backend, TestDatabase};

async fn status_with_key(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/license_updates"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["api-key", "create", "--help"],
    ] {
        let out = licensed().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let serve = licensed().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--bind",
        "--database-url",
        "LICENSED_DATABASE_URL",
        "--public-rate-limit",
        "--metrics-bind",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn an_unknown_database_scheme_exits_2_naming_the_accepted_ones() {
    for command in [
        &["migrate"][..],
        &["serve", "--bind", "127.0.0.1:0"],
        &["api-key", "create", "--business", "x"],
    ] {
        let out = licensed()
            .args(command)
            .args(["--database-url", "mysql://root:hunter2@db/x"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("sqlite://") && stderr.contains("postgres://"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "the password must not be echoed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_bootstraps_once_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let mut first = Served::start(&url, None);
    first.wait_for("Created business `default`");
    let key = first.wait_for("lsk_").trim().to_owned();
    assert_eq!(status_with_key(&first.url, &key).await, 200);
    assert_eq!(status_with_key(&first.url, "lsk_wrong").await, 401);
    assert_eq!(first.terminate().code(), Some(0));

    // A second start on the same database creates nothing and prints no key.
    let second = Served::start(&url, None);
    assert!(
        !second.seen.iter().any(|l| l.contains("lsk_")),
        "{:?}",
        second.seen
    );
    assert_eq!(status_with_key(&second.url, &key).await, 200);
    assert_eq!(second.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chosen.db").display());
    let served = Served::start(&url, Some("my-chosen-admin-key"));
    assert!(
        !served
            .seen
            .iter()
            .any(|l| l.contains("my-chosen-admin-key")),
        "the chosen key is not echoed"
    );
    assert_eq!(
        status_with_key(&served.url, "my-chosen-admin-key").await,
        200
    );
    assert_eq!(served.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_create_prints_a_working_key_on_the_last_line() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let migrate = licensed()
            .args(["migrate", "--database-url", &database.url])
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "{}",
            String::from_utf8_lossy(&migrate.stderr)
        );

        let create = |read_only: bool| {
            let mut command = licensed();
            command
                .args(["api-key", "create", "--business", "acme"])
                .env("LICENSED_DATABASE_URL", &database.url);
            if read_only {
                command.arg("--read-only");
            }
            let out = command.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .last()
                .unwrap()
                .trim()
                .to_owned()
        };
        let writer = create(false);
        let reader = create(true);
        assert_ne!(writer, reader);

        let served = Served::start(&database.url, None);
        assert!(
            !served.seen.iter().any(|l| l.contains("Created business")),
            "not an empty database"
        );
        let client = reqwest::Client::new();
        let post = |key: &str| {
            client
                .post(format!("{}/license_updates", served.url))
                .bearer_auth(key)
                .json(&serde_json::json!({"accountId": "a", "licenseId": "l", "updateType": "ABSOLUTE", "quantity": 1}))
                .send()
        };
        assert_eq!(
            post(&writer).await.unwrap().status().as_u16(),
            200,
            "{backend:?}"
        );
        assert_eq!(
            post(&reader).await.unwrap().status().as_u16(),
            403,
            "{backend:?}"
        );
        assert_eq!(status_with_key(&served.url, &reader).await, 200);
        assert_eq!(served.terminate().code(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_serves_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("owned.db").display());
    let served = Served::start(&url, None);

    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["api-key", "create", "--business", "acme"][..],
    ] {
        let out = licensed()
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("in use by another process"),
            "{args:?}: {stderr}"
        );
    }

    assert_eq!(served.terminate().code(), Some(0));
    let out = licensed()
        .args([
            "api-key",
            "create",
            "--business",
            "acme",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
