//! The console in a real browser (headless Chromium over WebDriver, see
//! `common/browser.rs`): signing in and out, the key's life cycle checked over the API,
//! read-only keys, CSRF, the pages at 390 pixels wide, the keyboard and labels, and an
//! automated accessibility check (axe-core). Each test has a server and a browser of its
//! own; a failing one leaves a screenshot in `target/browser-screenshots/`.

mod common;

use anyhow::{Context, Result, bail, ensure};
use common::browser::Browser;
use common::{Reply, TestServer};
use fantoccini::key::Key;
use reqwest::Method;
use serde_json::{Value, json};

// What the database keeps (sessions, keys, instances) runs on both backends; how the
// pages look and what the browser holds, on SQLite.
browser_tests!(
    both: [
        signing_in_opens_the_overview_and_signing_out_ends_the_session,
        a_wrong_key_is_refused_without_a_session,
        a_key_is_found_disabled_enabled_and_its_instance_deactivated,
        a_key_is_issued_from_the_console,
        a_read_only_key_gets_no_write_controls_and_its_writes_are_refused,
        forms_without_their_csrf_token_are_refused,
    ],
    sqlite: [
        the_key_never_reaches_the_browsers_storage_or_a_page,
        pages_fit_390_pixels_without_scrolling_sideways,
        the_keyboard_reaches_the_content_and_every_control_is_labelled,
        pages_pass_the_accessibility_check,
    ],
);

const SESSION_COOKIE: &str = "licensed_session";

/// A key issued over the API, with one instance activated by an app.
struct Issued {
    id: String,
    key: String,
    instance_id: String,
    instance_name: String,
}

async fn customer_and_product(server: &TestServer) -> (String, String) {
    let customer = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let product = server
        .post("/products", json!({"name": "Editor Pro"}))
        .await;
    (
        text(&customer.expect(201).json["customer_id"]),
        text(&product.expect(201).json["product_id"]),
    )
}

async fn issued_with_an_instance(server: &TestServer) -> Issued {
    let (customer_id, product_id) = customer_and_product(server).await;
    let key = server
        .post(
            "/license_keys",
            json!({"customer_id": customer_id, "product_id": product_id, "activations_limit": 3}),
        )
        .await;
    let key = &key.expect(201).json;
    let instance_name = "build-server-7".to_owned();
    let instance = server
        .call(
            Method::POST,
            "/licenses/activate",
            "",
            Some(json!({"license_key": key["key"], "name": instance_name})),
        )
        .await;
    Issued {
        id: text(&key["id"]),
        key: text(&key["key"]),
        instance_id: text(&instance.expect(201).json["id"]),
        instance_name,
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// The key as the API shows it now.
async fn api_key(server: &TestServer, id: &str) -> Value {
    server
        .get(&format!("/license_keys/{id}"))
        .await
        .expect(200)
        .json
        .clone()
}

/// A console request outside the browser, with the session cookie `session` and (for a
/// POST) the form `form`; redirects are not followed, so a 303 shows where it leads.
async fn console(
    server: &TestServer,
    method: Method,
    path: &str,
    session: &str,
    form: &[(&str, &str)],
) -> Reply {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client
        .request(method.clone(), format!("{}{path}", server.url))
        .header("cookie", format!("{SESSION_COOKIE}={session}"));
    if method == Method::POST {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("form"));
    }
    Reply::from(request.send().await.expect("console request")).await
}

/// The session cookie's value in the browser, which must have one.
async fn session_cookie(browser: &Browser) -> Result<String> {
    let cookie = browser.cookie(SESSION_COOKIE).await?;
    Ok(cookie
        .context("the browser holds no session cookie")?
        .value()
        .to_owned())
}

async fn sessions(server: &TestServer) -> i64 {
    server
        .database
        .count("SELECT count(*) FROM console_sessions")
        .await
}

async fn signing_in_opens_the_overview_and_signing_out_ends_the_session(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    browser.goto("/console").await?;
    let path = browser.path().await?;
    ensure!(
        path == "/console/sign-in",
        "signed out, /console led to {path}"
    );
    ensure!(browser.heading().await? == "Sign in");

    browser.sign_in(&server.key).await?;
    let path = browser.path().await?;
    ensure!(path == "/console", "signing in led to {path}");
    let heading = browser.heading().await?;
    ensure!(
        heading == "Overview",
        "the page after signing in is {heading:?}"
    );
    let cookie = (browser.cookie(SESSION_COOKIE).await?).context("no session cookie")?;
    ensure!(cookie.http_only() == Some(true), "not HttpOnly: {cookie}");
    ensure!(
        format!("{:?}", cookie.same_site()) == "Some(Strict)",
        "not SameSite=Strict: {cookie}"
    );
    ensure!(cookie.path() == Some("/console"), "path: {cookie}");
    ensure!(
        browser.cookie("licensed_sign_in").await?.is_none(),
        "the sign-in form's cookie outlived the sign-in"
    );
    let token = cookie.value().to_owned();
    ensure!(sessions(server).await == 1);
    let overview = console(server, Method::GET, "/console", &token, &[]).await;
    ensure!(
        overview.status == 200 && overview.text.contains("Overview"),
        "the session cookie does not open the console outside the browser: {} {}",
        overview.status,
        overview.header("location").unwrap_or_default()
    );

    browser.sign_out().await?;
    let path = browser.path().await?;
    ensure!(path == "/console/sign-in", "signing out led to {path}");
    ensure!(browser.heading().await? == "Sign in");
    ensure!(
        browser.cookie(SESSION_COOKIE).await?.is_none(),
        "the session cookie is still in the browser"
    );
    ensure!(sessions(server).await == 0, "the session record was kept");
    let after = console(server, Method::GET, "/console", &token, &[]).await;
    ensure!(
        after.status == 303 && after.header("location") == Some("/console/sign-in"),
        "the old session cookie still opens the console: {} {}",
        after.status,
        after.text
    );
    browser.goto("/console").await?;
    ensure!(browser.path().await? == "/console/sign-in");
    Ok(())
}

async fn a_wrong_key_is_refused_without_a_session(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let wrong = "lsk_this_key_was_never_issued_0123456789";
    browser.sign_in(wrong).await?;
    let path = browser.path().await?;
    ensure!(path == "/console/sign-in", "a wrong key led to {path}");
    let alert = browser.text("[role=alert]").await?;
    ensure!(
        alert.contains("That API key is not valid"),
        "the alert says {alert:?}"
    );
    ensure!(
        browser.cookie(SESSION_COOKIE).await?.is_none(),
        "a wrong key got a session cookie"
    );
    ensure!(sessions(server).await == 0);
    ensure!(
        !browser.client.source().await?.contains(wrong),
        "the refused key is shown back in the page"
    );
    let value: String = browser
        .js("return document.getElementById('api_key').value;", vec![])
        .await?;
    ensure!(value.is_empty(), "the key field was filled back in");

    // The form shown with the refusal works: its token is new.
    browser.fill("API key", &server.key).await?;
    browser.click("form button[type=submit]").await?;
    ensure!(browser.heading().await? == "Overview");
    Ok(())
}

async fn the_key_never_reaches_the_browsers_storage_or_a_page(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    browser.goto("/console/sign-in").await?;
    let field = browser.by_label("API key").await?;
    ensure!(field.attr("type").await?.as_deref() == Some("password"));
    ensure!(field.attr("autocomplete").await?.as_deref() == Some("off"));

    browser.sign_in(&server.key).await?;
    ensure!(browser.heading().await? == "Overview");
    // Back through the history, the sign-in page is not shown again with the key filled
    // in: a signed-in browser is led on to the console.
    browser.client.back().await?;
    let path = browser.path().await?;
    ensure!(path == "/console", "back from the overview led to {path}");
    let fields: u64 = browser
        .js(
            "return document.querySelectorAll('input[type=password]').length;",
            vec![],
        )
        .await?;
    ensure!(fields == 0, "a key field on the page back");

    let detail = format!("/console/license-keys/{}", issued.id);
    for path in ["/console", "/console/license-keys", detail.as_str()] {
        browser.goto(path).await?;
        let storage: (u64, u64) = browser
            .js(
                "return [window.localStorage.length, window.sessionStorage.length];",
                vec![],
            )
            .await?;
        ensure!(storage == (0, 0), "{path}: web storage holds {storage:?}");
        let script_cookies: String = browser.js("return document.cookie;", vec![]).await?;
        ensure!(
            script_cookies.is_empty(),
            "{path}: scripts can read cookies: {script_cookies:?}"
        );
        ensure!(
            !browser.client.source().await?.contains(&server.key),
            "{path}: the API key is in the page"
        );
        let url = browser.client.current_url().await?;
        ensure!(!url.as_str().contains(&server.key), "the key is in the URL");
        for cookie in browser.client.get_all_cookies().await? {
            ensure!(
                !cookie.value().contains(&server.key),
                "cookie {} holds the key",
                cookie.name()
            );
        }
    }

    Ok(())
}

async fn a_key_is_found_disabled_enabled_and_its_instance_deactivated(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    let detail = format!("/console/license-keys/{}", issued.id);
    browser.sign_in(&server.key).await?;

    browser.goto("/console/license-keys").await?;
    let listed = browser.texts("table tbody tr td:first-child").await?;
    ensure!(listed == [issued.key.clone()], "the list shows {listed:?}");
    browser.fill("Find by key", &issued.key).await?;
    browser.click("form.filters button[type=submit]").await?;
    let path = browser.path().await?;
    ensure!(path == detail, "finding the key led to {path}");
    ensure!(browser.heading().await? == "License key");
    ensure!(browser.text("dl.facts").await?.contains(&issued.key));
    ensure!(browser.text("dl.facts .status").await? == "active");

    // Cancelling the question changes nothing.
    let disable = "form[action$='/disable'] button";
    let question = browser.click_and_answer(disable, false).await?;
    ensure!(
        question.starts_with("Disable this key?"),
        "asked {question:?}"
    );
    ensure!(browser.path().await? == detail);
    ensure!(api_key(server, &issued.id).await["status"] == "active");

    browser.click_and_answer(disable, true).await?;
    ensure!(browser.path().await? == format!("{detail}?done=disabled"));
    let notice = browser.text("[role=status]").await?;
    ensure!(notice.contains("The key is disabled"), "notice: {notice:?}");
    ensure!(browser.text("dl.facts .status").await? == "disabled");
    let key = api_key(server, &issued.id).await;
    ensure!(key["status"] == "disabled", "over the API: {key}");

    browser.click("form[action$='/enable'] button").await?;
    let notice = browser.text("[role=status]").await?;
    ensure!(notice.contains("enabled again"), "notice: {notice:?}");
    let key = api_key(server, &issued.id).await;
    ensure!(key["status"] == "active", "over the API: {key}");
    ensure!(key["instances_count"] == 1, "over the API: {key}");

    let deactivate = format!("button[aria-label='Deactivate {}']", issued.instance_name);
    let question = browser.click_and_answer(&deactivate, true).await?;
    ensure!(
        question.contains(&issued.instance_name),
        "asked {question:?}"
    );
    let notice = browser.text("[role=status]").await?;
    ensure!(notice.contains("deactivated"), "notice: {notice:?}");
    ensure!(browser.find_all(&deactivate).await?.is_empty());
    let key = api_key(server, &issued.id).await;
    ensure!(key["instances_count"] == 0, "over the API: {key}");
    ensure!(key["status"] == "active", "over the API: {key}");
    Ok(())
}

async fn a_key_is_issued_from_the_console(server: &TestServer, browser: &Browser) -> Result<()> {
    let (customer_id, product_id) = customer_and_product(server).await;
    browser.sign_in(&server.key).await?;
    browser.goto("/console/license-keys").await?;
    browser.click("a[href='/console/license-keys/new']").await?;
    ensure!(browser.heading().await? == "Issue a license key");
    browser.choose("Customer", "Ada <ada@example.com>").await?;
    browser.choose("Product", "Editor Pro").await?;
    browser.fill("Activation limit", "2").await?;
    browser.click("main form button[type=submit]").await?;

    let path = browser.path().await?;
    let id = (path.strip_prefix("/console/license-keys/"))
        .and_then(|rest| rest.strip_suffix("?done=issued"))
        .with_context(|| format!("issuing led to {path}"))?;
    let notice = browser.text("[role=status]").await?;
    ensure!(notice.contains("The key is issued"), "notice: {notice:?}");
    let key = api_key(server, id).await;
    ensure!(key["customer_id"] == customer_id.as_str(), "{key}");
    ensure!(key["product_id"] == product_id.as_str(), "{key}");
    ensure!(key["activations_limit"] == 2, "{key}");
    ensure!(key["status"] == "active", "{key}");
    let shown = browser.text("dl.facts dd code").await?;
    ensure!(
        key["key"] == shown.as_str(),
        "the page shows {shown}: {key}"
    );
    Ok(())
}

async fn a_read_only_key_gets_no_write_controls_and_its_writes_are_refused(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    let read_only = server.new_key("alpha", true).await;
    browser.sign_in(&read_only).await?;
    ensure!(browser.heading().await? == "Overview");
    ensure!(browser.text("header .badge").await? == "read-only");

    browser.goto("/console/license-keys").await?;
    ensure!(
        browser
            .find_all("a[href='/console/license-keys/new']")
            .await?
            .is_empty(),
        "a read-only key is offered to issue keys"
    );

    let detail = format!("/console/license-keys/{}", issued.id);
    browser.goto(&detail).await?;
    // The instance is listed, so its Deactivate button would be there for a writer.
    ensure!(
        browser
            .text("main table")
            .await?
            .contains(&issued.instance_name)
    );
    let buttons = browser.texts("main button").await?;
    ensure!(
        buttons.is_empty(),
        "a read-only key's page has buttons {buttons:?}"
    );
    let forms = browser.find_all("main form").await?;
    ensure!(forms.is_empty(), "a read-only key's page has forms");

    let csrf_input = browser.find("input[name=csrf]").await?;
    let csrf = (csrf_input.attr("value").await?).context("the csrf input has no value")?;
    let session = session_cookie(browser).await?;
    let instance = &issued.instance_id;
    for path in [
        format!("{detail}/disable"),
        format!("{detail}/instances/{instance}/deactivate"),
        "/console/license-keys/new".to_owned(),
    ] {
        let reply = console(server, Method::POST, &path, &session, &[("csrf", &csrf)]).await;
        ensure!(
            reply.status == 403 && reply.text.contains("read-only"),
            "{path} with the session's own token: {} {}",
            reply.status,
            reply.text
        );
    }
    let key = api_key(server, &issued.id).await;
    ensure!(key["status"] == "active", "over the API: {key}");
    ensure!(key["instances_count"] == 1, "over the API: {key}");
    Ok(())
}

async fn forms_without_their_csrf_token_are_refused(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    let detail = format!("/console/license-keys/{}", issued.id);
    browser.sign_in(&server.key).await?;
    browser.goto(&detail).await?;
    let session = session_cookie(browser).await?;
    let csrf = (browser
        .find("form[action$='/disable'] input[name=csrf]")
        .await?)
        .attr("value")
        .await?
        .context("no csrf value")?;

    let disable = format!("{detail}/disable");
    for form in [vec![], vec![("csrf", "")], vec![("csrf", "not-the-token")]] {
        let reply = console(server, Method::POST, &disable, &session, &form).await;
        ensure!(
            reply.status == 403,
            "disable with {form:?}: {} {}",
            reply.status,
            reply.text
        );
    }
    let reply = console(server, Method::POST, "/console/sign-out", &session, &[]).await;
    ensure!(
        reply.status == 403,
        "sign-out without a token: {}",
        reply.status
    );
    let still = console(server, Method::GET, "/console", &session, &[]).await;
    ensure!(still.status == 200, "the session ended: {}", still.status);
    let key = api_key(server, &issued.id).await;
    ensure!(key["status"] == "active", "over the API: {key}");

    // The same request with the page's token goes through: the token made the difference.
    let reply = console(server, Method::POST, &disable, &session, &[("csrf", &csrf)]).await;
    ensure!(
        reply.status == 303,
        "disable with the token: {}",
        reply.status
    );
    let key = api_key(server, &issued.id).await;
    ensure!(key["status"] == "disabled", "over the API: {key}");
    Ok(())
}

/// Fails when the page scrolls sideways, naming the outermost elements that stick out
/// (those inside a box that scrolls or clips them, such as a `.table-wrap`, excepted).
async fn fits(browser: &Browser, path: &str, width: u32) -> Result<()> {
    let (scroll, inner, wide): (u32, u32, Vec<String>) = browser
        .js(
            "const inner = window.innerWidth;
             const clipped = (e) => {
                 for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                     if (getComputedStyle(a).overflowX !== 'visible') { return true; }
                 }
                 return false;
             };
             const out = [...document.body.querySelectorAll('*')]
                .filter((e) => e.getBoundingClientRect().right > inner + 0.5 && !clipped(e));
             const wide = out.filter((e) => !out.includes(e.parentElement))
                .slice(0, 10)
                .map((e) => e.outerHTML.slice(0, 120));
             return [document.documentElement.scrollWidth, inner, wide];",
            vec![],
        )
        .await?;
    ensure!(
        inner == width,
        "{path}: the page is {inner} pixels wide, not {width}"
    );
    if scroll > inner {
        bail!(
            "{path} at {width} pixels scrolls sideways ({scroll} > {inner}); sticking out: {wide:#?}"
        );
    }
    Ok(())
}

async fn pages_fit_390_pixels_without_scrolling_sideways(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    let detail = format!("/console/license-keys/{}", issued.id);
    let pages = [
        "/console",
        "/console/license-keys",
        detail.as_str(),
        "/console/license-keys/new",
    ];
    for width in [390, 1280] {
        browser.set_width(width).await?;
        browser.goto("/console/sign-in").await?;
        fits(browser, "/console/sign-in", width).await?;
        if width == 390 {
            browser.sign_in(&server.key).await?;
        }
        for path in pages {
            browser.goto(path).await?;
            fits(browser, path, width).await?;
        }
    }
    // The key list's table is there to scroll inside its own box, not the page.
    browser.set_width(390).await?;
    browser.goto("/console/license-keys").await?;
    let overflow: String = browser
        .js(
            "return getComputedStyle(document.querySelector('.table-wrap')).overflowX;",
            vec![],
        )
        .await?;
    ensure!(
        overflow == "auto",
        "the table's box has overflow-x {overflow}"
    );
    Ok(())
}

/// The form controls of the page that have no label: neither a `<label>` nor an
/// `aria-label` (or `aria-labelledby`).
async fn unlabelled_controls(browser: &Browser) -> Result<Vec<String>> {
    browser
        .js(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter((c) => !(c.labels && [...c.labels].some((l) => l.textContent.trim()))
                    && !(c.getAttribute('aria-label') || '').trim()
                    && !c.getAttribute('aria-labelledby'))
                .map((c) => c.outerHTML);",
            vec![],
        )
        .await
}

async fn the_keyboard_reaches_the_content_and_every_control_is_labelled(
    server: &TestServer,
    browser: &Browser,
) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    browser.goto("/console/sign-in").await?;
    let unlabelled = unlabelled_controls(browser).await?;
    ensure!(unlabelled.is_empty(), "sign-in: unlabelled {unlabelled:#?}");
    let focused = browser.focused().await?;
    ensure!(
        focused.contains("id=\"api_key\""),
        "the sign-in page starts with the focus on {focused}"
    );

    browser.sign_in(&server.key).await?;
    let detail = format!("/console/license-keys/{}", issued.id);
    for path in [
        "/console",
        "/console/license-keys",
        detail.as_str(),
        "/console/license-keys/new",
    ] {
        browser.goto(path).await?;
        browser.press(Key::Tab).await?;
        let focused = browser.focused().await?;
        ensure!(
            focused.contains("class=\"skip\"") && focused.ends_with("Skip to content"),
            "{path}: the first Tab focuses {focused}"
        );
        let left: f64 = browser
            .js(
                "return document.activeElement.getBoundingClientRect().left;",
                vec![],
            )
            .await?;
        ensure!(left >= 0.0, "{path}: the focused skip link is off screen");
        browser.press(Key::Enter).await?;
        let focused = browser.focused().await?;
        ensure!(
            focused.starts_with("<main id=\"main\""),
            "{path}: the skip link led the focus to {focused}"
        );
        let unlabelled = unlabelled_controls(browser).await?;
        ensure!(unlabelled.is_empty(), "{path}: unlabelled {unlabelled:#?}");
    }
    Ok(())
}

/// One line per violation axe reported, and per element it names.
fn describe(page: &str, violations: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    for violation in violations {
        lines.push(format!(
            "{page}: [{}] {} — {} ({})",
            violation["impact"].as_str().unwrap_or("?"),
            violation["id"].as_str().unwrap_or("?"),
            violation["help"].as_str().unwrap_or(""),
            violation["helpUrl"].as_str().unwrap_or(""),
        ));
        for node in violation["nodes"].as_array().into_iter().flatten() {
            lines.push(format!(
                "    {} {}: {}",
                node["target"],
                node["html"].as_str().unwrap_or(""),
                node["failureSummary"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', " ")
            ));
        }
    }
    lines
}

async fn pages_pass_the_accessibility_check(server: &TestServer, browser: &Browser) -> Result<()> {
    let issued = issued_with_an_instance(server).await;
    let detail = format!("/console/license-keys/{}", issued.id);
    let mut report = Vec::new();
    let mut serious = 0;
    let mut check = async |page: &str| -> Result<bool> {
        let Some(violations) = browser.axe().await? else {
            return Ok(false);
        };
        serious += (violations.iter())
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .count();
        report.extend(describe(page, &violations));
        Ok(true)
    };

    browser.goto("/console/sign-in").await?;
    if !check("sign-in").await? {
        return Ok(()); // node is missing: skipped (outside CI) by `axe_source`
    }
    browser.sign_in("lsk_wrong").await?;
    check("sign-in, refused").await?;
    browser.fill("API key", &server.key).await?;
    browser.click("form button[type=submit]").await?;
    for (page, path) in [
        ("overview", "/console".to_owned()),
        ("license keys", "/console/license-keys".to_owned()),
        (
            "license keys, none match",
            "/console/license-keys?status=expired".to_owned(),
        ),
        ("license key", detail.clone()),
        (
            "license key, after a change",
            format!("{detail}?done=disabled"),
        ),
        ("issue a key", "/console/license-keys/new".to_owned()),
        ("not found", "/console/license-keys/lic_missing".to_owned()),
    ] {
        browser.goto(&path).await?;
        check(page).await?;
    }
    for line in &report {
        eprintln!("axe: {line}");
    }
    // The check itself sees a fault when there is one: an input without a label.
    browser
        .js::<Value>(
            "document.querySelector('main').append(document.createElement('input'));",
            vec![],
        )
        .await?;
    let planted = browser.axe().await?.unwrap_or_default();
    ensure!(
        planted.iter().any(|v| v["id"] == "label"),
        "axe-core missed an input without a label: {planted:?}"
    );
    ensure!(
        serious == 0,
        "axe-core found {serious} serious or critical violations:\n{}",
        report.join("\n")
    );
    Ok(())
}
