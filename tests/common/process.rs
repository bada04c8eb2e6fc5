//! `licensed serve` as a separate process, with its stderr collected line by line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn licensed() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_licensed"));
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("LICENSED_")) {
        command.env_remove(name);
    }
    command
}

/// A `licensed serve` process, with its stderr collected line by line.
pub struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub url: String,
    pub seen: Vec<String>,
}

impl Served {
    pub fn start(database_url: &str, bootstrap_key: Option<&str>) -> Self {
        Self::start_with(database_url, bootstrap_key, &[])
    }

    /// Starts with extra `serve` flags.
    pub fn start_with(database_url: &str, bootstrap_key: Option<&str>, flags: &[&str]) -> Self {
        let mut served = Self::spawn(database_url, bootstrap_key, flags);
        let line = served.wait_for("listening on http://");
        served.url = line[line.find("http://").unwrap()..].trim().to_owned();
        served
    }

    /// Starts the process without waiting for it to listen (`url` stays empty).
    pub fn spawn(database_url: &str, bootstrap_key: Option<&str>, flags: &[&str]) -> Self {
        Self::spawn_logging(database_url, bootstrap_key, flags, "info")
    }

    /// [`Served::spawn`] with `LICENSED_LOG` set to `filter`.
    pub fn spawn_logging(
        database_url: &str,
        bootstrap_key: Option<&str>,
        flags: &[&str],
        filter: &str,
    ) -> Self {
        let mut command = licensed();
        command
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(flags)
            .env("LICENSED_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = bootstrap_key {
            command.env("LICENSED_BOOTSTRAP_API_KEY", key);
        }
        let mut child = command.spawn().expect("spawn licensed serve");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            url: String::new(),
        }
    }

    /// The first line so far, or to come, that contains `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no `{needle}` on stderr; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Every line written so far.
    pub fn logged(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal_terminate();
        self.child.wait().unwrap()
    }

    pub fn signal_terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// The exit status, if the process exits within `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
