//! The `licensed` binary as an operator runs it.

mod common;

use std::time::Duration;

use common::process::{Served, licensed};
use common::{Backend, TestDatabase, TestRole};

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

/// The value of an unlabelled metric in `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|line| line.split(' ').next() == Some(name))?;
    line[name.len()..].trim().parse().ok()
}

/// The server's `/metrics` text, from its main port.
async fn metrics_of(served: &Served) -> String {
    let response = reqwest::get(format!("{}/metrics", served.url)).await;
    response.unwrap().text().await.unwrap()
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["api-key", "create", "--help"],
        &["api-key", "list", "--help"],
        &["api-key", "revoke", "--help"],
        &["signing-key", "show", "--help"],
        &["signing-key", "rotate", "--help"],
        &["license-file", "verify", "--help"],
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
        "LICENSED_MASTER_KEY",
        "LICENSED_BOOTSTRAP_API_KEY",
        "LICENSED_LOG",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
    for command in ["show", "rotate"] {
        let help = licensed()
            .args(["signing-key", command, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("LICENSED_MASTER_KEY"), "{command}: {text}");
    }
}

#[test]
fn an_unknown_database_scheme_exits_2_naming_the_accepted_ones() {
    let commands = [
        &["migrate"][..],
        &["serve", "--bind", "127.0.0.1:0"],
        &["api-key", "create", "--business", "x"],
    ];
    let urls = [
        "mysql://root:hunter2@db/x",
        "host=db user=app password=hunter2",
    ];
    for (command, url) in commands.iter().flat_map(|c| urls.map(|u| (c, u))) {
        let out = licensed()
            .args(*command)
            .args(["--database-url", url])
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

/// With `--metrics-bind`, `/metrics` moves to its own port (the one it bound, even when
/// asked for port 0), and its responses carry request ids like every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_a_port_of_their_own() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut served = Served::start_with(&database.url, None, &["--metrics-bind", "127.0.0.1:0"]);
    let line = served.wait_for("metrics on http://");
    let metrics_url = line[line.find("http://").unwrap()..].trim().to_owned();
    let client = reqwest::Client::new();
    let metrics = client.get(&metrics_url).send().await.unwrap();
    assert_eq!(metrics.status(), 200, "{metrics_url}");
    assert!(metrics.headers().contains_key("x-request-id"));
    assert!(metrics.text().await.unwrap().contains("db_connections"));
    let main = client
        .get(format!("{}/metrics", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the main port as well");
    assert_eq!(served.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chosen.db").display());
    let mut served = Served::start(&url, Some("my-chosen-admin-key"));
    served.wait_for("fewer than 32 characters");
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

    // On a database that is not new, the variable changes nothing, and says so.
    let mut again = Served::start(&url, Some("another-key"));
    again.wait_for("LICENSED_BOOTSTRAP_API_KEY is not used");
    assert_eq!(status_with_key(&again.url, "another-key").await, 401);
    assert_eq!(again.terminate().code(), Some(0));
}

#[test]
fn only_unknown_environment_variables_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let out = licensed()
        .args(["migrate", "--database-url", &url])
        .env("LICENSED_CLIENT_IP_HEADER", "X-Forwarded-For")
        .env("LICENSED_REQUEST_TIMEOUT_MS", "1000")
        .env("LICENSED_BIDN", "127.0.0.1:9")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reported: Vec<&str> = (stderr.lines())
        .filter(|line| line.contains("unknown environment variable"))
        .collect();
    assert_eq!(reported.len(), 1, "{stderr}");
    assert!(reported[0].contains("LICENSED_BIDN"), "{stderr}");
}

/// A bad value is named where the operator set it: the variable, or the flag.
#[test]
fn a_bad_value_is_named_by_the_variable_or_the_flag_it_came_from() {
    let from_variable = licensed()
        .args(["serve"])
        .env("LICENSED_DATABASE_TIMEOUT_MS", "0")
        .output()
        .unwrap();
    assert_eq!(from_variable.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&from_variable.stderr);
    assert!(
        stderr.contains("invalid value '0' for 'LICENSED_DATABASE_TIMEOUT_MS'"),
        "{stderr}"
    );

    for flag in [
        &["--database-timeout-ms", "0"][..],
        &["--database-timeout-ms=0"],
    ] {
        let from_flag = licensed()
            .arg("serve")
            .args(flag)
            .env("LICENSED_DATABASE_TIMEOUT_MS", "0")
            .output()
            .unwrap();
        assert_eq!(from_flag.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&from_flag.stderr);
        assert!(stderr.contains("for '--database-timeout-ms"), "{stderr}");
    }

    // A switch's variable takes the spellings a compose file uses; others are refused.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    for (value, code) in [("1", 1), ("yes", 1), ("off", 1), ("maybe", 2)] {
        let out = licensed()
            .args(["serve", "--bind", &address])
            .env("LICENSED_WEBHOOK_DENY_PRIVATE", value)
            .output()
            .unwrap();
        // 1: past the flags, stopped by the port in use.
        assert_eq!(out.status.code(), Some(code), "{value}");
    }
}

/// A malformed master key stops `serve` before a new database is made: its admin key is
/// not shown by a start that then fails (the next start would show none).
#[test]
fn a_malformed_master_key_stops_serve_before_it_touches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    let url = format!("sqlite://{}", path.display());
    let out = licensed()
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
        .env("LICENSED_MASTER_KEY", "not-a-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LICENSED_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains("lsk_"), "no admin key is shown: {stderr}");
    assert!(!path.exists(), "no database was created");
}

#[test]
fn a_port_in_use_stops_serve_before_it_touches_the_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    let url = format!("sqlite://{}", path.display());
    let out = licensed()
        .args(["serve", "--bind", &address, "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address} (--bind)")),
        "{stderr}"
    );
    assert!(!stderr.contains("lsk_"), "no admin key is shown: {stderr}");
    assert!(!path.exists(), "no database was created");

    // The metrics' own port taken: named as theirs.
    let serve = ["serve", "--bind", "127.0.0.1:0", "--metrics-bind", &address];
    let (code, _, stderr) = run_on(&url, &serve);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("(--metrics-bind)"), "{stderr}");
    assert!(!path.exists(), "no database was created");
}

#[test]
fn listen_addresses_are_ip_addresses_and_ports_and_two_of_them_differ() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    let url = format!("sqlite://{}", path.display());
    let (code, _, stderr) = run_on(&url, &["serve", "--bind", "localhost:8080"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("expected an IP address and a port"),
        "{stderr}"
    );
    let same = [
        "--bind",
        "127.0.0.1:18080",
        "--metrics-bind",
        "127.0.0.1:18080",
    ];
    let (code, _, stderr) = run_on(&url, &[&["serve"][..], &same].concat());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--metrics-bind is the address of --bind (127.0.0.1:18080)"),
        "{stderr}"
    );
    assert!(!path.exists(), "no database was created");
}

/// With `--sqlite-backup`, the running server writes whole copies of its database, at start
/// and at every interval; a copy restores: a server started on it has what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sqlite_server_backs_its_database_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let url = format!("sqlite://{}", live.display());
    let backup = dir.path().join("backup.db");
    let key = "lsk_backup-test-admin-key-of-enough-length";
    // A database only its owner may read is copied into a file only its owner may read.
    let (code, _, stderr) = run_on(&url, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o600)).unwrap();
    // What a copy cut short by a kill would leave; the next copy clears it away.
    let left = ["backup.db.partial", "backup.db.partial-journal"].map(|name| dir.path().join(name));
    for file in &left {
        std::fs::write(file, "left by a copy cut short").unwrap();
    }
    let mut served = Served::start_with(
        &url,
        Some(key),
        &[
            "--sqlite-backup",
            backup.to_str().unwrap(),
            "--sqlite-backup-every",
            "1s",
        ],
    );
    served.wait_for("database backed up");
    // Gone, or (should the next copy have begun) written anew.
    for file in &left {
        let planted = std::fs::read(file).is_ok_and(|text| text == b"left by a copy cut short");
        assert!(!planted, "{} is left", file.display());
    }
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let client = reqwest::Client::new();
    let written = client
        .post(format!("{}/license_updates", served.url))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "accountId": "acme", "licenseId": "seats", "updateType": "ABSOLUTE",
            "quantity": 7, "effectiveFrom": "2024-01-01T00:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    // Two more backups: the second began after the write was acknowledged.
    let backups = |served: &mut Served| {
        let logged = served.logged();
        (logged.iter())
            .filter(|line| line.contains("database backed up"))
            .count()
    };
    let before = backups(&mut served);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while backups(&mut served) < before + 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", served.seen);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics_of(&served).await;
    assert_eq!(metric(&metrics, "sqlite_backup_failures_total"), Some(0.0));
    let last = metric(&metrics, "sqlite_backup_last_success_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    assert!((now.unwrap().as_secs_f64() - last).abs() < 60.0, "{last}");
    assert_eq!(served.terminate().code(), Some(0));

    // Restored: the copy alone, without the live database's write-ahead log.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&backup, &restored).unwrap();
    let restored = Served::start(&format!("sqlite://{}", restored.display()), None);
    let listed: serde_json::Value = client
        .get(format!("{}/license_updates?accountId=acme", restored.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["quantity"], 7, "{listed}");
    assert_eq!(restored.terminate().code(), Some(0));
}

/// A server stopped while it writes a copy interrupts the copy and closes its database as
/// one file: the copy's own connection would otherwise keep the write-ahead log beside it.
#[test]
fn a_server_stopped_during_a_backup_interrupts_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let url = format!("sqlite://{}", live.display());
    let (code, _, stderr) = run_on(&url, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    // Enough data for the copy to take a while.
    let padding = rusqlite::Connection::open(&live).unwrap();
    padding
        .execute_batch(
            "CREATE TABLE padding (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 256)
             INSERT INTO padding SELECT randomblob(1048576) FROM n;",
        )
        .unwrap();
    drop(padding);
    let backup = dir.path().join("backup.db");
    let partial = dir.path().join("backup.db.partial");
    let mut served = Served::start_with(&url, None, &["--sqlite-backup", backup.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(std::time::Instant::now() < deadline, "no copy began");
        std::thread::sleep(Duration::from_millis(5));
    }
    let finished = served.logged().iter().any(|l| l.contains("backed up"));
    assert!(
        !finished,
        "the copy ended before the stop; pad the database more"
    );
    assert_eq!(served.terminate().code(), Some(0));
    assert!(!backup.exists(), "the copy was not interrupted");
    assert!(!dir.path().join("live.db-wal").exists());
}

/// A backup that fails while the server runs is logged and counted; the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_fails_is_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let to = backups.join("backup.db");
    let flags = [
        "--sqlite-backup",
        to.to_str().unwrap(),
        "--sqlite-backup-every",
        "1s",
    ];
    let mut served = Served::start_with(&url, None, &flags);
    served.wait_for("database backed up");
    // Moved away at once, whether or not a copy is being written into it.
    std::fs::rename(&backups, dir.path().join("elsewhere")).unwrap();
    served.wait_for("could not be backed up");
    let metrics = metrics_of(&served).await;
    let failures = metric(&metrics, "sqlite_backup_failures_total");
    assert!(failures.is_some_and(|n| n >= 1.0), "{metrics}");
    let ready = reqwest::get(format!("{}/readyz", served.url)).await;
    assert_eq!(ready.unwrap().status(), 200);
    assert_eq!(served.terminate().code(), Some(0));
}

/// A backup that could not be written is refused before the server starts: on PostgreSQL,
/// over one of the database's own files, into a directory that does not exist.
#[test]
fn a_backup_that_cannot_be_written_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("live.db");
    let sqlite = format!("sqlite://{}", database.display());
    let wal = format!("{}-wal", database.display());
    let nowhere = dir.path().join("missing").join("backup.db");
    // The database itself through a link to its directory.
    std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
    let linked = dir.path().join("link").join("live.db");
    // A database whose name is that of the copy's file before its rename.
    let held = dir.path().join("held.db.partial");
    std::fs::write(&held, "precious").unwrap();
    let held_url = format!("sqlite://{}", held.display());
    let beside_held = dir.path().join("held.db");
    for (url, to, expected) in [
        ("postgres://postgres@127.0.0.1/test", "backup.db", "pg_dump"),
        ("sqlite::memory:", "backup.db", "has none"),
        (sqlite.as_str(), wal.as_str(), "the database's own files"),
        (
            sqlite.as_str(),
            linked.to_str().unwrap(),
            "the database's own files",
        ),
        (
            held_url.as_str(),
            beside_held.to_str().unwrap(),
            "the database's own files",
        ),
        (
            sqlite.as_str(),
            nowhere.to_str().unwrap(),
            "there is no directory",
        ),
    ] {
        let out = licensed()
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
            .args(["--sqlite-backup", to])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("lsk_"), "no admin key is shown: {stderr}");
    }
    assert!(!database.exists(), "no database was created");
    assert_eq!(std::fs::read_to_string(&held).unwrap(), "precious");

    // An interval typed without a backup to take is a mistake; from the environment, it is
    // ignored with a warning (below).
    let out = licensed()
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &sqlite])
        .args(["--sqlite-backup-every", "30m"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--sqlite-backup-every applies only with --sqlite-backup"),
        "{stderr}"
    );
    // With a backup to take, an interval that does not parse is named by where it came from.
    let backup = dir.path().join("backup.db");
    for (flag, variable, named) in [
        (
            Some("0s"),
            None,
            "invalid value '0s' for '--sqlite-backup-every'",
        ),
        (
            None,
            Some("often"),
            "invalid value 'often' for 'LICENSED_SQLITE_BACKUP_EVERY'",
        ),
    ] {
        let mut serve = licensed();
        serve
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &sqlite])
            .args(["--sqlite-backup", backup.to_str().unwrap()]);
        if let Some(every) = flag {
            serve.args(["--sqlite-backup-every", every]);
        }
        if let Some(every) = variable {
            serve.env("LICENSED_SQLITE_BACKUP_EVERY", every);
        }
        let out = serve.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    assert!(!database.exists(), "no database was created");
}

/// `LICENSED_SQLITE_BACKUP_EVERY` without a backup to take, say in an environment shared
/// by servers on PostgreSQL, is ignored with a warning that names it, whatever its value.
#[test]
fn a_backup_interval_alone_in_the_environment_is_ignored() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let mut child = licensed()
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
        .env("LICENSED_SQLITE_BACKUP_EVERY", "0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let listening = line.contains("listening on");
        seen.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let warned = seen
        .iter()
        .any(|l| l.contains("ignoring LICENSED_SQLITE_BACKUP_EVERY"));
    assert!(warned, "{seen:?}");
    assert!(seen.last().unwrap().contains("listening on"), "{seen:?}");
}

/// A command's commits, and a stopped server's, are in the database file when it exits:
/// the file alone is the whole database, with no write-ahead log beside it to copy too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_is_one_file_once_its_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("whole.db");
    let url = format!("sqlite://{}", database.display());
    let wal = dir.path().join("whole.db-wal");
    let (code, _, stderr) = run_on(&url, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!wal.exists(), "after migrate");
    let (code, stdout, stderr) = run_on(&url, &["api-key", "create", "--business", "acme"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!wal.exists(), "after api-key create");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let served = Served::start(&url, None);
    assert_eq!(status_with_key(&served.url, &key).await, 200);
    assert_eq!(served.terminate().code(), Some(0));
    assert!(!wal.exists(), "after serve");

    // The file alone, copied elsewhere, holds the key.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&database, &copy).unwrap();
    let served = Served::start(&format!("sqlite://{}", copy.display()), None);
    assert_eq!(status_with_key(&served.url, &key).await, 200);
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
            let mut args = vec!["api-key", "create", "--business", "acme"];
            if read_only {
                args.push("--read-only");
            }
            let (code, stdout, stderr) = run_on(&database.url, &args);
            assert_eq!(code, Some(0), "{stderr}");
            stdout.lines().last().unwrap().trim().to_owned()
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

/// Runs `licensed` with these arguments on the database; its exit code, stdout and stderr.
fn run_on(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = licensed()
        .args(args)
        .env("LICENSED_DATABASE_URL", url)
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// A business named with spaces around it is the business of that name: a listing could
/// not show the two apart.
#[test]
fn a_business_is_named_without_the_spaces_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("licensed.db").display());
    assert_eq!(run_on(&url, &["migrate"]).0, Some(0));
    for business in ["acme", " acme ", "acme\t"] {
        let (code, _, stderr) = run_on(&url, &["api-key", "create", "--business", business]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, listed, stderr) = run_on(&url, &["api-key", "list", "--business", " acme"]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{listed}");
    assert!(
        rows.iter()
            .all(|row| row.split_whitespace().nth(1) == Some("acme"))
    );
    let (code, shown, stderr) = run_on(&url, &["signing-key", "show", "--business", "acme "]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(shown.starts_with("sk_"), "{shown}");
    let (_, all, _) = run_on(&url, &["api-key", "list"]);
    assert_eq!(all.lines().count(), 4, "one business's three keys: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_listed_without_their_secrets_and_revoked() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        assert_eq!(run_on(&database.url, &["migrate"]).0, Some(0));
        let create = |business: &str| {
            let (code, stdout, stderr) = run_on(
                &database.url,
                &["api-key", "create", "--business", business],
            );
            assert_eq!(code, Some(0), "{stderr}");
            let id = stdout
                .split_whitespace()
                .find(|w| w.starts_with("key_"))
                .unwrap()
                .to_owned();
            (id, stdout.lines().last().unwrap().trim().to_owned())
        };
        let (kept_id, kept) = create("acme");
        let (revoked_id, revoked) = create("zeta");

        let (code, listing, _) = run_on(&database.url, &["api-key", "list"]);
        assert_eq!(code, Some(0));
        let lines: Vec<&str> = listing.lines().collect();
        assert!(lines[0].starts_with("ID"), "{listing}");
        assert!(
            lines[1].starts_with(&kept_id) && lines[1].contains("acme"),
            "{listing}"
        );
        assert!(
            lines[2].starts_with(&revoked_id) && lines[2].contains("zeta"),
            "{listing}"
        );
        assert!(lines[1].contains("read-write"), "{listing}");
        assert!(
            !listing.contains(&kept) && !listing.contains("lsk_"),
            "a secret is listed: {listing}"
        );
        let (_, only_zeta, _) = run_on(&database.url, &["api-key", "list", "--business", "zeta"]);
        assert_eq!(only_zeta.lines().count(), 2, "{only_zeta}");

        // PostgreSQL servers check the key on every request: one that runs sees the revoke
        // at once. A SQLite file is held by one process, so the server is started after.
        let running = (backend == Backend::Postgres).then(|| Served::start(&database.url, None));
        if let Some(running) = &running {
            assert_eq!(status_with_key(&running.url, &revoked).await, 200);
        }
        let (code, _, stderr) = run_on(&database.url, &["api-key", "revoke", &revoked_id]);
        assert_eq!(code, Some(0), "{stderr}");
        if let Some(running) = running {
            assert_eq!(status_with_key(&running.url, &revoked).await, 401);
            assert_eq!(running.terminate().code(), Some(0));
        }
        let (code, _, stderr) = run_on(&database.url, &["api-key", "revoke", &revoked_id]);
        assert_eq!(code, Some(1), "{backend:?}: a second revoke");
        assert!(stderr.contains(&revoked_id), "{stderr}");
        let (_, listing, _) = run_on(&database.url, &["api-key", "list"]);
        assert!(!listing.contains(&revoked_id), "{listing}");

        let served = Served::start(&database.url, None);
        assert_eq!(
            status_with_key(&served.url, &kept).await,
            200,
            "{backend:?}"
        );
        assert_eq!(
            status_with_key(&served.url, &revoked).await,
            401,
            "{backend:?}"
        );
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

/// Serves `url` while another process holds it (a SQLite file's lock, PostgreSQL's
/// migration lock), and checks that the server waits and that a signal stops the wait
/// before it serves.
async fn a_signal_stops_its_wait(url: &str) {
    let mut waiting = Served::spawn(url, None, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(waiting.exits_within(Duration::ZERO).is_none(), "it waits");
    waiting.signal_terminate();
    let status = waiting
        .exits_within(Duration::from_secs(10))
        .expect("stopped");
    assert_eq!(
        status.code(),
        Some(0),
        "stopped, not refused after its wait"
    );
    waiting.wait_for("stopped before serving");
}

/// A server waiting for a SQLite file that another process holds stops on a signal,
/// rather than when its wait for the file ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_serve_while_it_waits_for_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("held.db").display());
    let holder = Served::start(&url, None);
    a_signal_stops_its_wait(&url).await;
    assert_eq!(holder.terminate().code(), Some(0));
}

/// A database migrated by a newer version is refused rather than used with a schema this
/// version does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_version_is_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let (code, _, stderr) = run_on(&database.url, &["migrate"]);
        assert_eq!(code, Some(0), "{stderr}");
        database
            .execute(match backend {
                Backend::Sqlite => "PRAGMA user_version = 99",
                Backend::Postgres => "INSERT INTO schema_migrations VALUES (99, 0)",
            })
            .await;
        let (code, _, stderr) = run_on(&database.url, &["migrate"]);
        assert_eq!(code, Some(1), "{backend:?}: {stderr}");
        assert!(stderr.contains("version 99"), "{backend:?}: {stderr}");
        assert!(stderr.contains("newer licensed"), "{backend:?}: {stderr}");
    }
}

/// A database that cannot be reached is described in the driver's or PostgreSQL's words,
/// not the connection pool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_says_why() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let missing = format!("{}_missing", database.url);
    let (code, _, stderr) = run_on(&missing, &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    let name = missing.rsplit('/').next().unwrap();
    assert!(
        stderr.contains(&format!(
            "cannot connect to PostgreSQL: FATAL 3D000: database \"{name}\" does not exist"
        )),
        "{stderr}"
    );
    let (code, _, stderr) = run_on("postgres://postgres@127.0.0.1:1/test", &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL: error connecting to server: "),
        "{stderr}"
    );
    assert!(!stderr.contains("new object"), "{stderr}");
}

/// Once its owner has migrated the database, a role with privileges on the tables alone
/// (no CREATE on the schema) can serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_create_privilege_serves_a_migrated_database() {
    // Declared first so that it is dropped after the database it has privileges in.
    let role: TestRole;
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    role = TestRole::create().await;
    let (code, _, stderr) = run_on(&database.url, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let name = &role.0;
    // Before PostgreSQL 15, every role may create in `public` unless told otherwise.
    database
        .execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name};"
        ))
        .await;
    let url = database.url.replace("postgres@", &format!("{name}@"));
    let mut served = Served::start(&url, None);
    let key = served.wait_for("lsk_").trim().to_owned();
    assert_eq!(status_with_key(&served.url, &key).await, 200);
    assert_eq!(served.terminate().code(), Some(0));
}

/// Sends a request whose promised body never comes, so that it stays in flight until the
/// request timeout; the connection is returned for its answer.
async fn stalled_request(url: &str, request_id: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /licenses/validate HTTP/1.1\r\nHost: x\r\nx-request-id: {request_id}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// A failed request's log line carries its request id, so that the id a client reports
/// leads to the line and its cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_logged_with_its_request_id() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut served = Served::start_with(&database.url, None, &["--request-timeout-ms", "300"]);
    // The keys' table locked: a validation runs over its timeout, the server's fault (503).
    let holder = database.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE license_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/licenses/validate", served.url))
        .header("x-request-id", "req-trace-me")
        .json(&serde_json::json!({"license_key": "LK-unknown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let line = served.wait_for("req-trace-me");
    assert!(line.contains("request failed"), "{line}");
    assert!(
        line.contains("503") && line.contains("request timeout"),
        "{line}"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(served.terminate().code(), Some(0));
}

/// A `debug` log names statements, never their parameters: the license keys, secrets and
/// private keys they carry (SPEC §6: a private key is in no log line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_log_holds_no_license_key_or_secret() {
    const ADMIN: &str = "lsk_debug_log_admin_key_0123456789abcdef";
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut served = Served::spawn_logging(&database.url, Some(ADMIN), &[], "debug");
    let line = served.wait_for("listening on http://");
    let url = line[line.find("http://").unwrap()..].trim().to_owned();
    let client = reqwest::Client::new();
    let typed = "SECRET-LICENSE-KEY-TEXT-42";
    let validated = client
        .post(format!("{url}/licenses/validate"))
        .json(&serde_json::json!({"license_key": typed}))
        .send()
        .await
        .unwrap();
    assert_eq!(validated.status(), 404);
    // A new endpoint's secret is written, sealed or not, as a statement's parameter.
    let endpoint = client
        .post(format!("{url}/webhooks"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"url": "https://example.com/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), 201);
    let logged = served.logged().join("\n");
    assert!(logged.contains("DEBUG"), "the log is at debug: {logged}");
    assert!(!logged.contains(typed), "the license key logged:\n{logged}");
    // tokio-postgres writes each statement's parameters after this word.
    assert!(!logged.contains("parameters:"), "{logged}");
    assert_eq!(served.terminate().code(), Some(0));
}

/// Whether each connection of `application` to PostgreSQL is encrypted.
async fn encrypted_connections(admin: &tokio_postgres::Client, application: &str) -> Vec<bool> {
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// TLS to PostgreSQL as libpq's `sslmode` asks. This machine's PostgreSQL serves TLS with
/// a self-signed certificate for the host name `localhost`; one that serves no TLS skips
/// the test (TLS is the server's configuration, not something CI can count on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_use_tls_as_sslmode_asks() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let admin = common::connect(common::PG_ADMIN_URL).await.unwrap();
    let setting = |name: &'static str| {
        let admin = &admin;
        async move {
            let row = admin.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
            row.get::<_, String>(0)
        }
    };
    if setting("ssl").await != "on" {
        eprintln!("skipping: this PostgreSQL does not serve TLS");
        return;
    }
    let certificate = setting("ssl_cert_file").await;
    let url = |host: &str, query: &str| database.url.replace("127.0.0.1", host) + "?" + query;

    // The default (prefer) and `require` encrypt; `disable` does not.
    for (query, encrypted) in [
        ("application_name=tls_default", true),
        ("sslmode=require&application_name=tls_require", true),
        ("sslmode=disable&application_name=tls_disable", false),
    ] {
        let served = Served::start(&url("127.0.0.1", query), None);
        let application = query.rsplit('=').next().unwrap();
        let seen = encrypted_connections(&admin, application).await;
        assert!(!seen.is_empty(), "{query}: no connection");
        assert!(
            seen.iter().all(|&ssl| ssl == encrypted),
            "{query}: {seen:?}"
        );
        drop(served);
    }

    // Checked certificates: signed by one in sslrootcert (in every mode given one, as in
    // libpq), and for verify-full naming the host connected to (the certificate names
    // localhost, not 127.0.0.1). The public CAs did not sign it.
    let root = format!("sslrootcert={certificate}");
    let public_cas = "/etc/ssl/certs/ca-certificates.crt";
    for (host, query, works) in [
        ("localhost", format!("sslmode=verify-full&{root}"), true),
        ("127.0.0.1", format!("sslmode=verify-ca&{root}"), true),
        ("127.0.0.1", format!("sslmode=require&{root}"), true),
        ("127.0.0.1", format!("sslmode=verify-full&{root}"), false),
        (
            "127.0.0.1",
            format!("sslmode=require&sslrootcert={public_cas}"),
            false,
        ),
        ("localhost", "sslmode=verify-full".to_owned(), false),
        ("localhost", "sslmode=sometimes".to_owned(), false),
    ] {
        if query.contains(public_cas) && !std::path::Path::new(public_cas).exists() {
            continue;
        }
        let (code, _, stderr) = run_on(&url(host, &query), &["migrate"]);
        assert_eq!(code == Some(0), works, "{host} {query}: {stderr}");
        if query == "sslmode=verify-full" {
            assert!(stderr.contains("sslrootcert"), "{stderr}");
        }
        if query == "sslmode=sometimes" {
            assert!(stderr.contains("unsupported sslmode"), "{stderr}");
        }
    }
    // A `?` in the password is not where the parameters begin.
    let with_password = url(
        "postgres:a?b@localhost",
        &format!("sslmode=verify-full&{root}"),
    )
    .replace("postgres@postgres:", "postgres:");
    let (code, _, stderr) = run_on(&with_password, &["migrate"]);
    assert_eq!(code, Some(0), "{with_password}: {stderr}");

    // Over a Unix socket, where PostgreSQL offers no TLS, the default connects in clear.
    let socket = std::path::Path::new("/var/run/postgresql");
    if socket.join(".s.PGSQL.5432").exists() {
        let name = database.url.rsplit('/').next().unwrap();
        let over_socket = format!("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/{name}");
        let (code, _, stderr) = run_on(&over_socket, &["migrate"]);
        assert_eq!(code, Some(0), "{stderr}");
        // No host name there for verify-full to check the certificate against.
        let checked = format!("{over_socket}?sslmode=verify-full&{root}");
        let (code, _, stderr) = run_on(&checked, &["migrate"]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("needs a host name"), "{stderr}");
    }
}

/// `api-key` commands do not create a SQLite database: a key made in a new file (the
/// server's `--database-url` forgotten) would be one the server never sees.
#[test]
fn api_key_commands_refuse_a_sqlite_file_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        &["api-key", "create", "--business", "acme"][..],
        &["api-key", "list"],
        &["api-key", "revoke", "key_none"],
    ] {
        let (code, _, stderr) = run_on(&url, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("no database at"), "{args:?}: {stderr}");
    }
    assert!(!path.exists(), "no file was created");
}

/// Nor do the key commands put the schema into a database that has none (a PostgreSQL
/// URL naming the wrong database, an empty file): they refuse it and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_refuse_a_database_without_the_schema() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let (tables, path) = match database.url.strip_prefix("sqlite://") {
            Some(path) => {
                std::fs::File::create(path).unwrap();
                ("SELECT count(*) FROM sqlite_master", Some(path.to_owned()))
            }
            None => (
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                None,
            ),
        };
        for args in [
            &["api-key", "create", "--business", "acme"][..],
            &["api-key", "list"],
            &["api-key", "revoke", "key_none"],
            &["signing-key", "show", "--business", "acme"],
            &["signing-key", "rotate", "--business", "acme"],
        ] {
            let (code, _, stderr) = run_on(&database.url, args);
            assert_eq!(code, Some(1), "{backend:?} {args:?}: {stderr}");
            assert!(
                stderr.contains("no licensed schema") && stderr.contains("licensed migrate"),
                "{backend:?} {args:?}: {stderr}"
            );
        }
        assert_eq!(database.count(tables).await, 0, "{backend:?}");
        if let Some(path) = path {
            assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
        }
        // Once migrated, the same command makes its key.
        assert_eq!(run_on(&database.url, &["migrate"]).0, Some(0));
        let (code, _, stderr) = run_on(&database.url, &["api-key", "create", "--business", "a"]);
        assert_eq!(code, Some(0), "{backend:?}: {stderr}");
    }
}

/// Another program's `schema_migrations` (Rails keeps text versions there) tells a
/// database that is not this program's: refused by name, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_migrations_table_is_refused() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    (database.connect().await)
        .batch_execute(
            "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('20240101000000')",
        )
        .await
        .unwrap();
    for args in [&["api-key", "list"][..], &["migrate"]] {
        let (code, _, stderr) = run_on(&database.url, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("not licensed's"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_closed_output_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("licensed.db").display());
    assert_eq!(run_on(&url, &["migrate"]).0, Some(0));
    // The reading end is closed before the command writes, as `| head -0` would.
    let mut child = licensed()
        .args(["api-key", "create", "--business", "acme"])
        .env("LICENSED_DATABASE_URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write the output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A key that nobody saw is revoked, and the message says so.
    assert!(stderr.contains("was revoked"), "{stderr}");
    let (code, listed, stderr) = run_on(&url, &["api-key", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!listed.contains("acme"), "{listed}");
}

/// During the drain after a first signal, a second one stops the server at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_serve_without_waiting() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut served = Served::start(&database.url, None);
    // A request kept in flight (until the 30 s request timeout).
    let _stream = stalled_request(&served.url, "req-in-flight").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    served.signal_terminate();
    served.wait_for("shutting down");
    assert!(
        served.exits_within(Duration::from_millis(500)).is_none(),
        "it drains"
    );
    served.signal_terminate();
    let status = served
        .exits_within(Duration::from_secs(5))
        .expect("stopped at once");
    assert_eq!(status.code(), Some(1));
}

/// A server waiting for another process's migrations stops on a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_serve_while_it_waits_for_migrations() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let holder = database.connect().await;
    holder
        .batch_execute("SELECT pg_advisory_lock(hashtextextended('licensed schema migrations', 0))")
        .await
        .unwrap();
    a_signal_stops_its_wait(&database.url).await;
}

/// `--help` shows where the database URL comes from but not its value, which may hold a
/// password; a timeout or pool of 0, or a client address header the server cannot read,
/// is a usage error; a log filter that does not parse
/// is reported rather than silently replaced.
#[test]
fn configuration_mistakes_are_told_and_secrets_are_not() {
    let help = licensed()
        .args(["serve", "--help"])
        .env("LICENSED_DATABASE_URL", "postgres://app:s3cret@db/licensed")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    assert!(text.contains("LICENSED_DATABASE_URL"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    for (flag, value) in [
        ("--database-timeout-ms", "0"),
        ("--request-timeout-ms", "0"),
        ("--database-max-connections", "0"),
        ("--client-ip-header", "Forwarded"),
    ] {
        let refused = licensed().args(["serve", flag, value]).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(flag),
            "{flag}"
        );
    }

    // A PostgreSQL URL that does not parse says which part is wrong, not its password.
    for (url, wrong) in [
        ("postgres://app:s3cret@127.0.0.1:badport/db", "`port`"),
        (
            "postgres://app:s3cret@127.0.0.1:5432/db?colour=red",
            "`colour`",
        ),
    ] {
        let refused = licensed()
            .args(["migrate", "--database-url", url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(wrong), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }

    let misspelt = licensed()
        .args([
            "api-key",
            "list",
            "--database-url",
            "sqlite:///nonexistent/licensed.db",
        ])
        .env("LICENSED_LOG", "licensed=debgu")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&misspelt.stderr);
    assert!(
        stderr.contains("LICENSED_LOG is not a valid filter"),
        "{stderr}"
    );
}

/// On PostgreSQL, the connections that point reads share are counted as shared, not as
/// in use: an idle server has none in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_has_no_database_connection_in_use() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let served = Served::start_with(&database.url, None, &[]);
    let client = reqwest::Client::new();
    // Reads that ride the shared connections, and finish.
    for _ in 0..4 {
        let validated = client
            .post(format!("{}/licenses/validate", served.url))
            .json(&serde_json::json!({"license_key": "LK-unknown"}))
            .send()
            .await
            .unwrap();
        assert_eq!(validated.status(), 404);
    }
    let gauge = |metrics: &str, state: &str| {
        let name = format!("db_connections{{state=\"{state}\"}} ");
        let line = metrics.lines().find(|line| line.starts_with(&name));
        line.and_then(|line| line[name.len()..].trim().parse::<f64>().ok())
    };
    // The background jobs (the sweeper, the webhook dispatcher) take a pooled connection
    // now and then: some scrape in a few finds none in use, unless one is counted wrongly.
    let mut scrapes = Vec::new();
    for _ in 0..20 {
        let metrics = metrics_of(&served).await;
        let idle = gauge(&metrics, "in_use") == Some(0.0);
        assert_eq!(gauge(&metrics, "shared"), Some(2.0), "{metrics}");
        scrapes.push(metrics);
        if idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = scrapes.last().unwrap();
    assert_eq!(gauge(last, "in_use"), Some(0.0), "{scrapes:?}");
    assert_eq!(served.terminate().code(), Some(0));
}

/// SQLite makes a database's file, not the directories it is in: a path whose directory is
/// missing says so.
#[test]
fn a_database_in_a_missing_directory_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not").join("made");
    let url = format!("sqlite://{}", missing.join("x.db").display());
    let (code, _, stderr) = run_on(&url, &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("there is no directory {}", missing.display())),
        "{stderr}"
    );
    assert!(!missing.exists());
}
