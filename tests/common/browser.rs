//! The console in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver by a `chromedriver` of each test's own. A test body runs through [`run`],
//! which saves a screenshot (and the page's HTML) when the body fails, panics or runs out
//! of time, and closes the browser either way. Without Chromium or chromedriver the test
//! is skipped, except under `CI=true`, where it fails.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::node::node_modules;
use super::skip_unless_ci;

/// Debian's Chromium; its driver is found on `PATH`.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "chromedriver";

/// The window a test starts with: a laptop's.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 900;

/// How long a helper waits for the page to show what it expects.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a whole test body may take before it fails (with a screenshot).
const TEST_DEADLINE: Duration = Duration::from_secs(120);
/// How long chromedriver may take to answer its status after starting.
const DRIVER_START: Duration = Duration::from_secs(20);

/// Where a failing test leaves `<test>.png` and `<test>.html`: `browser-screenshots` in
/// the target directory.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// Runs `body` in a new browser on the server at `base_url`. When the body returns an
/// error, panics or outlasts [`TEST_DEADLINE`], a screenshot of the page is saved first
/// and the test fails naming it; the browser is closed in every case. Skipped (unless
/// under `CI=true`) when Chromium or chromedriver is not installed.
pub async fn run(test: &str, base_url: &str, body: impl AsyncFnOnce(&Browser) -> Result<()>) {
    let Some(browser) = Browser::start(test, base_url).await else {
        return;
    };
    let outcome = AssertUnwindSafe(tokio::time::timeout(TEST_DEADLINE, body(&browser)))
        .catch_unwind()
        .await;
    let failure = match outcome {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(error))) => Some(format!("{error:?}")),
        Ok(Err(_)) => Some(format!("the test ran longer than {TEST_DEADLINE:?}")),
        Err(panic) => Some(panic_message(panic.as_ref())),
    };
    let evidence = match &failure {
        Some(_) => Some(browser.save_evidence().await),
        None => None,
    };
    browser.close().await;
    if let (Some(failure), Some(evidence)) = (failure, evidence) {
        panic!("browser test `{test}` failed: {failure}\n{evidence}");
    }
}

/// `future`, given at most ten seconds: a failing test's browser may not answer.
async fn within<T>(future: impl Future<Output = T>) -> Result<T, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(10), future).await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Whether Chromium and chromedriver are installed; says why not when they are not.
fn browser_installed() -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing (Debian package `chromium`)"));
    }
    match Command::new(CHROMEDRIVER).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => Err(format!(
            "`{CHROMEDRIVER}` is not on PATH (Debian package `chromium-driver`)"
        )),
    }
}

/// A `chromedriver` process and the Chromium profile directory it gives its browser; the
/// process and everything it started are killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready for a session.
    async fn start() -> Result<Self> {
        let mut last = None;
        // A port found free may be taken before chromedriver binds it: try another.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--log-level=WARNING")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // A group of its own, so that its browser can be killed with it.
                .process_group(0)
                .spawn()
                .with_context(|| format!("start {CHROMEDRIVER}"))?;
            let mut driver = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                _profile: tempfile::tempdir()?,
            };
            match driver.wait_until_ready().await {
                Ok(()) => return Ok(driver),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("chromedriver did not start")))
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("chromedriver exited at start: {status}");
            }
            let status = client
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready within {DRIVER_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is chromedriver's own (see `start`): its pid is the group's id.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium showing the server at `base`.
pub struct Browser {
    pub client: Client,
    base: String,
    test: String,
    driver: Driver,
}

impl Browser {
    /// `None` (the test is then skipped, unless under `CI=true`) when Chromium or
    /// chromedriver is missing; a failure to start them otherwise panics.
    pub async fn start(test: &str, base: &str) -> Option<Self> {
        if let Err(reason) = browser_installed() {
            skip_unless_ci(&reason);
            return None;
        }
        let driver = Driver::start().await.expect("start chromedriver");
        let profile = driver._profile.path().display().to_string();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        // A confirm dialog stays open until the test accepts or dismisses it.
        capabilities.insert("unhandledPromptBehavior".into(), json!("ignore"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={profile}"),
                    "--lang=en-US",
                    "--no-proxy-server",
                    "--disable-background-networking",
                    "--disable-component-update",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("open a Chromium session through chromedriver");
        Some(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            test: test.to_owned(),
            driver,
        })
    }

    /// Ends the browser session (which quits Chromium), then chromedriver.
    async fn close(self) {
        let Self { client, driver, .. } = self;
        let _ = within(client.close()).await;
        drop(driver);
    }

    /// Saves a screenshot and the page's HTML of a failing test; says where, or why not.
    async fn save_evidence(&self) -> String {
        let dir = screenshot_dir();
        let name: String = (self.test.chars())
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let png = dir.join(format!("{name}.png"));
        let html = dir.join(format!("{name}.html"));
        let _ = std::fs::create_dir_all(&dir);
        let mut shot = within(self.client.screenshot()).await;
        if !matches!(shot, Ok(Ok(_))) {
            // An open dialog blocks the screenshot: dismiss it and try again.
            let _ = within(self.client.dismiss_alert()).await;
            shot = within(self.client.screenshot()).await;
        }
        let url = match within(self.client.current_url()).await {
            Ok(Ok(url)) => url.to_string(),
            _ => "(unknown)".to_owned(),
        };
        let mut said = format!("page at failure: {url}");
        match shot {
            Ok(Ok(bytes)) => match std::fs::write(&png, bytes) {
                Ok(()) => said += &format!("\nscreenshot: {}", png.display()),
                Err(error) => said += &format!("\nno screenshot: {error}"),
            },
            Ok(Err(error)) => said += &format!("\nno screenshot: {error}"),
            Err(_) => said += "\nno screenshot: the browser did not answer",
        }
        if let Ok(Ok(source)) = within(self.client.source()).await
            && std::fs::write(&html, source).is_ok()
        {
            said += &format!("\npage source: {}", html.display());
        }
        said
    }

    /// The server's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens `path` on the server and waits for it to load.
    pub async fn goto(&self, path: &str) -> Result<()> {
        self.client
            .goto(&self.url(path))
            .await
            .with_context(|| format!("open {path}"))
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Polls `check` until it holds, for at most [`PATIENCE`]; fails saying `what` was
    /// awaited (and the last error `check` gave, if any).
    pub async fn wait_until(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        let mut last_error = None;
        loop {
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => last_error = Some(error),
            }
            if Instant::now() > deadline {
                return Err(match last_error {
                    Some(error) => error.context(format!("waited {PATIENCE:?} for {what}")),
                    None => anyhow!("waited {PATIENCE:?} for {what}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let mut found = None;
        self.wait_until(&format!("an element matching `{css}`"), async || {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => found = Some(element),
                Err(error) if error.is_no_such_element() => {}
                Err(error) => return Err(error.into()),
            }
            Ok(found.is_some())
        })
        .await?;
        found.ok_or_else(|| anyhow!("no element matches `{css}`"))
    }

    /// Every element matching `css` now (no waiting: for asserting absence too).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.find(css).await?.text().await?.trim().to_owned())
    }

    /// The visible text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await? {
            texts.push(element.text().await?.trim().to_owned());
        }
        Ok(texts)
    }

    /// The page's `h1`.
    pub async fn heading(&self) -> Result<String> {
        self.text("h1").await
    }

    /// The form control labelled `label` (by `<label>` text, or `aria-label`).
    pub async fn by_label(&self, label: &str) -> Result<Element> {
        let script = r#"
            const wanted = arguments[0];
            for (const l of document.querySelectorAll("label")) {
                if (l.textContent.trim() === wanted && l.control) { return l.control; }
            }
            return document.querySelector(`[aria-label="${CSS.escape(wanted)}"]`);
        "#;
        let mut found = None;
        self.wait_until(&format!("a control labelled {label:?}"), async || {
            let value = self.client.execute(script, vec![json!(label)]).await?;
            found = self.element_of(&value);
            Ok(found.is_some())
        })
        .await?;
        found.ok_or_else(|| anyhow!("no control labelled {label:?}"))
    }

    /// The element a script returned.
    fn element_of(&self, value: &Value) -> Option<Element> {
        let id = value.as_object()?.values().next()?.as_str()?;
        Some(Element::from_element_id(
            self.client.clone(),
            ElementRef::from(id.to_owned()),
        ))
    }

    /// Types `text` into the control labelled `label`, replacing what it held.
    pub async fn fill(&self, label: &str, text: &str) -> Result<()> {
        let control = self.by_label(label).await?;
        control.clear().await?;
        control.send_keys(text).await?;
        Ok(())
    }

    /// Chooses the option whose text is `option` in the select labelled `label`.
    pub async fn choose(&self, label: &str, option: &str) -> Result<()> {
        let select = self.by_label(label).await?;
        select.select_by_label(option).await?;
        Ok(())
    }

    /// Runs `script` in the page (its `arguments` are `args`) and reads what it returns.
    pub async fn js<T: DeserializeOwned>(&self, script: &str, args: Vec<Value>) -> Result<T> {
        let value = self.client.execute(script, args).await?;
        serde_json::from_value(value.clone())
            .with_context(|| format!("read {value} from the page's script"))
    }

    /// Marks the page shown, so that [`Self::wait_for_new_page`] can tell when another
    /// replaced it.
    async fn mark_page(&self) -> Result<()> {
        self.client
            .execute("window.__licensedTestOldPage = true;", vec![])
            .await?;
        Ok(())
    }

    /// Waits until the marked page has been replaced by another, fully loaded.
    async fn wait_for_new_page(&self) -> Result<()> {
        self.wait_until("the next page to load", async || {
            let fresh: bool = self
                .js(
                    "return !window.__licensedTestOldPage && document.readyState === 'complete';",
                    vec![],
                )
                .await?;
            Ok(fresh)
        })
        .await
    }

    /// Clicks `element` and waits for the page it leads to (a link, or a form's button).
    pub async fn click_to_new_page(&self, element: Element) -> Result<()> {
        self.mark_page().await?;
        element.click().await?;
        self.wait_for_new_page().await
    }

    /// Clicks the first element matching `css` and waits for the page it leads to.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.click_to_new_page(element).await
    }

    /// Clicks the button matching `css` of a form that asks first (`data-confirm`);
    /// answers the question (OK when `accept`) and, when accepted, waits for the next page.
    /// Returns the question asked.
    pub async fn click_and_answer(&self, css: &str, accept: bool) -> Result<String> {
        let button = self.find(css).await?;
        self.mark_page().await?;
        button.click().await?;
        let mut question = String::new();
        self.wait_until("a confirmation dialog", async || {
            question = self.client.get_alert_text().await?;
            Ok(true)
        })
        .await?;
        if accept {
            self.client.accept_alert().await?;
            self.wait_for_new_page().await?;
        } else {
            self.client.dismiss_alert().await?;
        }
        Ok(question)
    }

    /// Submits the sign-in form with `key`, as a person would: types it, presses the
    /// button, and waits for the page that answers.
    pub async fn sign_in(&self, key: &str) -> Result<()> {
        self.goto("/console/sign-in").await?;
        self.fill("API key", key).await?;
        self.click("form button[type=submit]").await
    }

    /// Presses the header's "Sign out" and waits for the sign-in page.
    pub async fn sign_out(&self) -> Result<()> {
        self.click("form.sign-out button").await
    }

    /// The browser's cookie `name` for the page shown (read through WebDriver, which sees
    /// `HttpOnly` cookies too).
    pub async fn cookie(&self, name: &str) -> Result<Option<fantoccini::cookies::Cookie<'static>>> {
        let cookies = self.client.get_all_cookies().await?;
        Ok(cookies.into_iter().find(|c| c.name() == name))
    }

    /// Resizes the window so that the page is `width` CSS pixels wide, and waits until
    /// the page has taken the new width.
    pub async fn set_width(&self, width: u32) -> Result<()> {
        self.client.set_window_size(width, HEIGHT).await?;
        // The window's outer size may include a frame: make the inner width `width`.
        let inner: i64 = self.js("return window.innerWidth;", vec![]).await?;
        let frame = i64::from(width) - inner;
        if frame != 0 {
            let outer = u32::try_from(i64::from(width) + frame)?;
            self.client.set_window_size(outer, HEIGHT).await?;
        }
        self.wait_until(&format!("a page {width} pixels wide"), async || {
            let inner: u32 = self.js("return window.innerWidth;", vec![]).await?;
            Ok(inner == width)
        })
        .await
    }

    /// Presses and releases `key` on the keyboard (on whatever has the focus).
    pub async fn press(&self, key: Key) -> Result<()> {
        let value: char = key.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.client.perform_actions(keys).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    /// The element that has the focus, described as its start tag and text.
    pub async fn focused(&self) -> Result<String> {
        self.js(
            "const e = document.activeElement;
             if (!e) { return ''; }
             const tag = e.outerHTML.slice(0, e.outerHTML.indexOf('>') + 1);
             return tag + (e.innerText || '').trim().slice(0, 80);",
            vec![],
        )
        .await
    }

    /// The violations axe-core finds on the page shown, each as axe reports it (`id`,
    /// `impact`, `help`, `nodes` with their `target` and `failureSummary`); `None` when
    /// axe-core is not installed (see [`axe_source`]).
    pub async fn axe(&self) -> Result<Option<Vec<Value>>> {
        let Some(source) = axe_source() else {
            return Ok(None);
        };
        self.client.execute(source, vec![]).await?;
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then((r) => done({ violations: r.violations, passes: r.passes.length }))
                    .catch((e) => done({ error: String(e) }));",
                vec![],
            )
            .await?;
        if let Some(error) = result.get("error") {
            bail!("axe.run failed: {error}");
        }
        // A run that passed no rule did not look at the page.
        if result["passes"].as_u64().unwrap_or(0) == 0 {
            bail!("axe.run checked nothing: {result}");
        }
        let violations = result["violations"].as_array().cloned().unwrap_or_default();
        Ok(Some(violations))
    }
}

/// axe-core's script, from the npm packages of `tests/compat` (installed on first use);
/// `None` when node or npm is missing (the caller then skips, unless under `CI=true`).
pub fn axe_source() -> Option<&'static str> {
    static SOURCE: OnceLock<Option<String>> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let path = node_modules()?.join("axe-core/axe.min.js");
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            Some(source)
        })
        .as_deref()
}

/// Runs each named `async fn(&TestServer, &Browser) -> anyhow::Result<()>` in a browser
/// of its own, on a server of its own: those listed under `both` on SQLite and on
/// PostgreSQL, those under `sqlite` (what the database cannot change) on SQLite only.
#[macro_export]
macro_rules! browser_tests {
    (both: [$($both:ident),* $(,)?], sqlite: [$($sqlite:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $( $crate::browser_tests!(@test Sqlite, $both); )*
            $( $crate::browser_tests!(@test Sqlite, $sqlite); )*
        }
        mod postgres {
            $( $crate::browser_tests!(@test Postgres, $both); )*
        }
    };
    (@test $backend:ident, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let backend = $crate::common::Backend::$backend;
            if let Some(server) = $crate::common::TestServer::start(backend).await {
                let test = concat!(module_path!(), "::", stringify!($name));
                let url = server.url.clone();
                $crate::common::browser::run(test, &url, async |browser| {
                    super::$name(&server, browser).await
                })
                .await;
            }
        }
    };
}
