//! The console over plain HTTP (SPEC §9): sessions and their rules, every page, and every
//! form refused without its CSRF token or with a read-only key; the browser's view is in
//! `console.rs`.

mod common;

use common::{Backend, TestDatabase, TestServer};
use licensed::http::ServerSettings;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

backend_tests!(
    a_session_opens_with_a_key_and_ends_with_sign_out,
    signing_in_opens_the_page_that_asked_for_it,
    the_sign_in_form_of_every_tab_signs_in_once,
    a_revoked_key_or_an_idle_session_is_signed_out,
    every_page_renders_for_a_signed_in_key,
    forms_without_their_token_or_from_a_read_only_key_change_nothing,
    forms_write_through_the_api_rules,
    a_change_form_sent_late_keeps_what_changed_meanwhile,
    a_product_form_sent_unchanged_changes_nothing,
    a_key_bound_to_seats_is_unbound_with_a_limit_from_its_form,
    the_ledger_pairs_are_listed_page_by_page,
    a_pairs_entries_are_listed_page_by_page_with_their_metadata,
    the_ledger_page_charts_the_pairs_quantity,
    lists_show_the_newest_first_and_their_pages_miss_nothing,
);

/// A browser's view of the console: its session cookie, sent by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    session: Option<String>,
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    (response.headers().get_all(SET_COOKIE).iter())
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// The value of the first input named `name` on a page, unescaped.
fn input_value(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name}"));
    let tag = &page[at..at + page[at..].find('>').unwrap()];
    let value = tag.split("value=\"").nth(1).unwrap_or_default();
    let value = &value[..value.find('"').unwrap_or_default()];
    (value
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">"))
    .replace("&amp;", "&")
}

/// The value of the first hidden `csrf` input of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token")
        + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url.clone(),
            session: None,
        }
    }

    /// Signs in with `key`: the status of the sign-in's answer.
    async fn sign_in(&mut self, key: &str) -> StatusCode {
        let form = self
            .client
            .get(format!("{}/console/sign-in", self.base))
            .send()
            .await
            .unwrap();
        let token = cookie_value(&set_cookies(&form), "licensed_sign_in").unwrap();
        let page = form.text().await.unwrap();
        let answer = self
            .client
            .post(format!("{}/console/sign-in", self.base))
            .header(COOKIE, format!("licensed_sign_in={token}"))
            .form(&[("csrf", csrf_of(&page).as_str()), ("api_key", key)])
            .send()
            .await
            .unwrap();
        let cookies = set_cookies(&answer);
        if let Some(session) = cookie_value(&cookies, "licensed_session") {
            assert!(cookies.iter().any(|c| c.starts_with("licensed_session=")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Strict")));
            self.session = Some(session);
        }
        answer.status()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    /// Sends with the session's cookie: the status, and where it redirects or else the body.
    async fn send(&self, mut request: reqwest::RequestBuilder) -> (StatusCode, String) {
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("licensed_session={session}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        (status, location.unwrap_or(text))
    }

    /// The session's CSRF token, read from a page.
    async fn csrf(&self) -> String {
        let (status, page) = self.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_of(&page)
    }
}

/// A page read without a session asks for a sign-in, then opens; only a page of the
/// console is opened so. A browser signed in already skips the sign-in page.
async fn signing_in_opens_the_page_that_asked_for_it(server: TestServer) {
    let mut browser = Browser::new(&server);
    let (status, sign_in) = browser.get("/console/license-keys?status=active").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let next = "%2Fconsole%2Flicense-keys%3Fstatus%3Dactive";
    assert_eq!(sign_in, format!("/console/sign-in?next={next}"));
    let form = browser.client.get(format!("{}{sign_in}", server.url));
    let form = form.send().await.unwrap();
    let token = cookie_value(&set_cookies(&form), "licensed_sign_in").unwrap();
    let page = form.text().await.unwrap();
    assert!(page.contains("Sign in to open that page."), "{page}");
    let sign_in_with = async |next: &str| {
        let fields = [
            ("csrf", csrf_of(&page)),
            ("api_key", server.key.clone()),
            ("next", next.to_owned()),
        ];
        let answer = (browser
            .client
            .post(format!("{}/console/sign-in", server.url)))
        .header(COOKIE, format!("licensed_sign_in={token}"))
        .form(&fields)
        .send()
        .await
        .unwrap();
        (answer.headers().get(LOCATION).unwrap().to_str().unwrap()).to_owned()
    };
    assert_eq!(
        sign_in_with(&input_value(&page, "next")).await,
        "/console/license-keys?status=active"
    );
    for elsewhere in [
        "https://evil.example/console",
        "//evil.example/x",
        "/docs",
        "/console.evil",
        "/console/../docs",
        "/console/%2e%2e/docs",
    ] {
        assert_eq!(sign_in_with(elsewhere).await, "/console", "{elsewhere}");
    }

    browser.sign_in(&server.key).await;
    assert_eq!(
        browser.get(&format!("/console/sign-in?next={next}")).await,
        (
            StatusCode::SEE_OTHER,
            "/console/license-keys?status=active".to_owned()
        )
    );
}

async fn a_session_opens_with_a_key_and_ends_with_sign_out(server: TestServer) {
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.get("/console").await,
        (StatusCode::SEE_OTHER, "/console/sign-in".to_owned())
    );
    assert_eq!(browser.sign_in("lsk_wrong").await, StatusCode::UNAUTHORIZED);
    assert!(browser.session.is_none());
    assert_eq!(browser.sign_in(&server.key).await, StatusCode::SEE_OTHER);
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<h1>Overview</h1>"), "{page}");
    assert!(!page.contains(&server.key), "the key is on no page");

    // A sign-in form without its own token, once signed in, leads to the console and
    // opens no session.
    assert_eq!(
        browser
            .post(
                "/console/sign-in",
                &[("csrf", "forged"), ("api_key", &server.key)],
            )
            .await,
        (StatusCode::SEE_OTHER, "/console".to_owned())
    );
    assert_eq!(
        server
            .database
            .count("SELECT count(*) FROM console_sessions")
            .await,
        1
    );

    let csrf = browser.csrf().await;
    assert_eq!(
        browser
            .post("/console/sign-out", &[("csrf", "nope")])
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // With its token, but sent by a page of another site: refused, and still signed in.
    let url = format!("{}/console/sign-out", server.url);
    let cross = (browser.client.post(&url))
        .header("sec-fetch-site", "same-site")
        .form(&[("csrf", csrf.as_str())]);
    let (status, page) = browser.send(cross).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("another site"), "{page}");
    assert_eq!(browser.get("/console").await.0, StatusCode::OK);
    assert_eq!(
        browser.post("/console/sign-out", &[("csrf", &csrf)]).await,
        (StatusCode::SEE_OTHER, "/console/sign-in".to_owned())
    );
    assert_eq!(browser.get("/console").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        server
            .database
            .count("SELECT count(*) FROM console_sessions")
            .await,
        0
    );
}

/// Two tabs open on the sign-in page share the browser's one form token: either signs
/// in, and the other one's form, posted after, leads to the console. Without the
/// browser's token, or with another browser's, the form is refused.
async fn the_sign_in_form_of_every_tab_signs_in_once(server: TestServer) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/console/sign-in", server.url);
    let first = client.get(&url).send().await.unwrap();
    let token = cookie_value(&set_cookies(&first), "licensed_sign_in").unwrap();
    let first_csrf = csrf_of(&first.text().await.unwrap());
    assert_eq!(first_csrf, token);
    let jar = format!("licensed_sign_in={token}");
    let second = client.get(&url).header(COOKIE, &jar).send().await.unwrap();
    assert_eq!(
        cookie_value(&set_cookies(&second), "licensed_sign_in").as_ref(),
        Some(&token)
    );
    let second_csrf = csrf_of(&second.text().await.unwrap());
    assert_eq!(second_csrf, first_csrf, "each tab got a token of its own");

    // Another browser's token, or none, is refused.
    let elsewhere = client.get(&url).send().await.unwrap();
    let other = cookie_value(&set_cookies(&elsewhere), "licensed_sign_in").unwrap();
    assert_ne!(other, token);
    for (cookie, csrf) in [(jar.as_str(), other.as_str()), ("", token.as_str())] {
        let refused = client
            .post(&url)
            .header(COOKIE, cookie)
            .form(&[("csrf", csrf), ("api_key", server.key.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    // The browser's own pair of cookie and token, in a form that a page of another site
    // sent: a sibling subdomain (`same-site`) can plant the cookie it needs.
    for sender in ["same-site", "cross-site"] {
        let refused = client
            .post(&url)
            .header(COOKIE, &jar)
            .header("sec-fetch-site", sender)
            .form(&[("csrf", second_csrf.as_str()), ("api_key", &server.key)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{sender}");
        assert!(refused.text().await.unwrap().contains("another site"));
    }
    assert_eq!(
        server
            .database
            .count("SELECT count(*) FROM console_sessions")
            .await,
        0
    );

    let signed_in = client
        .post(&url)
        .header(COOKIE, &jar)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", second_csrf.as_str()), ("api_key", &server.key)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = cookie_value(&set_cookies(&signed_in), "licensed_session").unwrap();
    // The browser dropped the sign-in cookie and holds the session's; the first tab's
    // form is posted now.
    let again = client
        .post(&url)
        .header(COOKIE, format!("licensed_session={session}"))
        .form(&[("csrf", first_csrf.as_str()), ("api_key", &server.key)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()[LOCATION], "/console");
    assert_eq!(
        server
            .database
            .count("SELECT count(*) FROM console_sessions")
            .await,
        1
    );
}

async fn a_revoked_key_or_an_idle_session_is_signed_out(server: TestServer) {
    let key = server.new_key("alpha", false).await;
    let mut revoked = Browser::new(&server);
    revoked.sign_in(&key).await;
    assert_eq!(revoked.get("/console").await.0, StatusCode::OK);
    // The newest key of the business is the one just made: revoke it.
    let keys = server.store.list_api_keys().await.unwrap();
    let newest = keys.iter().max_by_key(|k| k.created_at).unwrap();
    assert!(server.store.revoke_api_key(&newest.id).await.unwrap());
    // Its browser is asked to sign in again, and shown the form (not sent back).
    let (status, sign_in) = revoked.get("/console/license-keys").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page) = revoked.get(&sign_in).await;
    assert_eq!(status, StatusCode::OK, "{sign_in}: {page}");
    assert!(page.contains("name=\"api_key\""), "{page}");
    let mut idle = Browser::new(&server);
    idle.sign_in(&server.key).await;
    assert_eq!(idle.get("/console").await.0, StatusCode::OK);
    // Twelve hours and a minute without a request.
    let long_ago = chrono::Utc::now().timestamp_micros() - (12 * 3600 + 60) * 1_000_000;
    server
        .database
        .execute(&format!(
            "UPDATE console_sessions SET last_seen_at = {long_ago}"
        ))
        .await;
    assert_eq!(idle.get("/console").await.0, StatusCode::SEE_OTHER);
    assert_eq!(revoked.get("/console").await.0, StatusCode::SEE_OTHER);
}

/// Customers, products and keys are listed newest first, so that the newest are shown (and
/// offered when issuing a key) past the first hundred; the pages of keys follow one
/// another without a gap.
async fn lists_show_the_newest_first_and_their_pages_miss_nothing(server: TestServer) {
    let mut customers = Vec::new();
    for n in 0..101 {
        let customer = server
            .post(
                "/customers",
                json!({"email": format!("c{n}@example.com"), "name": format!("Customer {n}")}),
            )
            .await;
        customers.push(customer.expect(201).json["customer_id"].clone());
    }
    let product = server.post("/products", json!({"name": "Editor"})).await;
    let product = product.expect(201).json["product_id"].clone();
    let mut keys = Vec::new();
    for _ in 0..51 {
        let key = server
            .post(
                "/license_keys",
                json!({"customer_id": customers[100], "product_id": product}),
            )
            .await;
        keys.push(key.expect(201).json["id"].as_str().unwrap().to_owned());
    }
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    // The customers' pages, newest first, show each one once.
    let mut seen = Vec::new();
    for index in 0.. {
        let (_, page) = browser
            .get(&format!("/console/customers?page={index}"))
            .await;
        seen.extend((0..101).filter(|n| page.contains(&format!(">c{n}@example.com<"))));
        if !page.contains("Older →") {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, (0..101).collect::<Vec<_>>());
    let (_, form) = browser.get("/console/license-keys/new").await;
    assert!(form.contains(customers[100].as_str().unwrap()), "{form}");
    // The oldest, the 101st, is offered by the link on its line.
    let oldest = customers[0].as_str().unwrap();
    let (_, last) = browser.get("/console/customers?page=2").await;
    let link = format!("/console/license-keys/new?customer_id={oldest}");
    assert!(last.contains(&link), "{last}");
    let (_, form) = browser.get(&link).await;
    assert!(
        form.contains(&format!("value=\"{oldest}\" selected")),
        "{form}"
    );

    let (_, first) = browser.get("/console/license-keys").await;
    let (_, second) = browser.get("/console/license-keys?page=1").await;
    let shown = |page: &str| keys.iter().filter(|k| page.contains(k.as_str())).count();
    assert_eq!((shown(&first), shown(&second)), (50, 1));
    assert!(first.contains(&keys[50]) && second.contains(&keys[0]));
    assert!(first.contains("Older") && second.contains("Newer"));
}

/// A customer, a product and a key with one instance, over the API: the key's id and text.
async fn seed(server: &TestServer) -> (String, String) {
    let customer = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let product = server
        .post(
            "/products",
            json!({"name": "Editor", "license_key_activations_limit": 3}),
        )
        .await;
    let key = server
        .post(
            "/license_keys",
            json!({"customer_id": customer.json["customer_id"], "product_id": product.json["product_id"]}),
        )
        .await;
    key.expect(201);
    let text = key.json["key"].as_str().unwrap().to_owned();
    server
        .call(
            reqwest::Method::POST,
            "/licenses/activate",
            "",
            Some(json!({"license_key": text, "name": "laptop"})),
        )
        .await
        .expect(201);
    (key.json["id"].as_str().unwrap().to_owned(), text)
}

async fn every_page_renders_for_a_signed_in_key(server: TestServer) {
    let (key_id, text) = seed(&server).await;
    server
        .post(
            "/license_updates",
            json!({"accountId": "acme", "licenseId": "seats", "quantity": 5, "updateType": "ABSOLUTE"}),
        )
        .await
        .expect(200);
    let hook = server
        .post("/webhooks", json!({"url": "http://127.0.0.1:9/h"}))
        .await;
    let hook = hook.json["id"].as_str().unwrap().to_owned();
    let product = server.get("/products").await.json["items"][0]["product_id"].clone();
    let product = product.as_str().unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    for (path, shows) in [
        ("/console".to_owned(), "Active keys"),
        ("/console/customers?email=ada@example.com".to_owned(), "Ada"),
        ("/console/products".to_owned(), "Editor"),
        (format!("/console/products/{product}"), "Save changes"),
        (
            "/console/license-keys?status=active".to_owned(),
            text.as_str(),
        ),
        (format!("/console/license-keys/{key_id}"), "laptop"),
        ("/console/license-keys/new".to_owned(), "Issue key"),
        ("/console/ledger?account=acme".to_owned(), "seats"),
        (
            "/console/ledger/pair?account=acme&license=seats".to_owned(),
            "Add to the ledger",
        ),
        ("/console/webhooks".to_owned(), "127.0.0.1:9"),
        (format!("/console/webhooks/{hook}"), "Recent messages"),
    ] {
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(page.contains(shows), "{path} shows no {shows}: {page}");
    }
    // A key's customer and product are named, not only numbered.
    let (_, key_page) = browser
        .get(&format!("/console/license-keys/{key_id}"))
        .await;
    assert!(
        key_page.contains("Ada &lt;ada@example.com&gt;"),
        "{key_page}"
    );
    assert!(
        key_page.contains("Editor <a href=\"/console/products/"),
        "{key_page}"
    );
    let (_, overview) = browser.get("/console").await;
    for (value, label) in [
        (1, "Customers"),
        (1, "Active keys"),
        (0, "Disabled keys"),
        (1, "Activations in the last 24 h"),
        (1, "Ledger pairs"),
    ] {
        let shown = overview
            .split("<li class=\"figure\">")
            .skip(1)
            .find(|figure| figure.contains(&format!(">{label}<")))
            .unwrap_or_else(|| panic!("no {label}: {overview}"));
        assert!(
            shown.contains(&format!("<span class=\"value\">{value}</span>")),
            "{label}: {shown}"
        );
    }
    // Finding a key by its text opens its page, as typed or as the API would read it.
    for typed in [text.clone(), text.to_lowercase()] {
        let (status, location) = browser
            .get(&format!("/console/license-keys?key={typed}"))
            .await;
        assert_eq!(
            (status, location),
            (
                StatusCode::SEE_OTHER,
                format!("/console/license-keys/{key_id}")
            ),
            "{typed}"
        );
    }
    for (path, status) in [
        ("/console/license-keys/lic_nope", StatusCode::NOT_FOUND),
        ("/console/no-such-page", StatusCode::NOT_FOUND),
        (
            "/console/license-keys/lic_nope/nothing",
            StatusCode::NOT_FOUND,
        ),
        ("/console/products/pdt_nope", StatusCode::NOT_FOUND),
        ("/console/webhooks/wh_nope", StatusCode::NOT_FOUND),
        ("/console/license-keys?status=lost", StatusCode::BAD_REQUEST),
        ("/console/license-keys?page=-1", StatusCode::BAD_REQUEST),
        (
            "/console/ledger/pair?account=acme&license=seats&month=2024-13",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/console/ledger/pair?account=acme&license=seats&month=9999-12",
            StatusCode::BAD_REQUEST,
        ),
        // Bytes that are not UTF-8 once decoded, rather than a search for U+FFFD.
        ("/console/customers?email=%FF", StatusCode::BAD_REQUEST),
        // No id or filter holds a NUL (PostgreSQL's text cannot).
        ("/console/license-keys/lic_%00", StatusCode::BAD_REQUEST),
        ("/console/customers?email=%00", StatusCode::BAD_REQUEST),
    ] {
        let (got, page) = browser.get(path).await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains("role=\"alert\""), "{path}: {page}");
        if path.contains("month=") {
            assert!(page.contains("`month`"), "names the field: {page}");
        }
        if path.contains("%FF") {
            assert!(page.contains("UTF-8"), "names the problem: {page}");
        }
        if path.contains("%00") {
            assert!(page.contains("NUL"), "names the problem: {page}");
        }
    }
    let csrf = browser.csrf().await;
    let (status, page) = (browser)
        .post("/console/license-keys/lic_%00/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert_eq!(
        browser.get("/console/").await,
        (StatusCode::PERMANENT_REDIRECT, "/console".to_owned())
    );
    // A method a page does not take: a page saying so, with the methods it takes.
    let url = format!("{}/console/license-keys", server.url);
    let refused = browser.client.delete(&url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(refused.headers()["allow"].to_str().unwrap().contains("GET"));
    assert!(refused.headers().contains_key("content-security-policy"));
    let page = refused.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
}

async fn forms_without_their_token_or_from_a_read_only_key_change_nothing(server: TestServer) {
    let (key_id, _) = seed(&server).await;
    let instance = server
        .get(&format!("/license_key_instances?license_key_id={key_id}"))
        .await;
    let instance = instance.json["items"][0]["id"].as_str().unwrap().to_owned();
    let reader = server.new_key("alpha", true).await;
    let mut read_only = Browser::new(&server);
    read_only.sign_in(&reader).await;
    let (_, page) = read_only
        .get(&format!("/console/license-keys/{key_id}"))
        .await;
    assert!(page.contains("read-only"));
    assert!(!page.contains("/disable\""), "no write controls: {page}");
    let (status, page) = read_only.get("/console/license-keys/new").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no form to issue a key: {page}"
    );
    assert!(page.contains("read-only"), "{page}");
    let reader_csrf = read_only.csrf().await;
    let mut admin = Browser::new(&server);
    admin.sign_in(&server.key).await;
    // A form over the body limit is refused unread; every answer carries its request id.
    let big = "x".repeat(100 * 1024);
    let (status, page) = admin.post("/console/products", &[("name", &big)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.contains("role=\"alert\""), "a console page: {page}");
    let traced = (admin.client.get(format!("{}/console/sign-in", admin.base)))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "trace-me");
    let posts = [
        format!("/console/license-keys/{key_id}/disable"),
        format!("/console/license-keys/{key_id}/edit"),
        format!("/console/license-keys/{key_id}/instances/{instance}/deactivate"),
        format!("/console/license-keys/{key_id}/license-file"),
        "/console/license-keys/new".to_owned(),
        "/console/products".to_owned(),
        "/console/ledger/pair".to_owned(),
    ];
    let fields = [
        ("activations_limit", "1"),
        ("name", "X"),
        ("account", "acme"),
        ("license", "seats"),
        ("update_type", "ABSOLUTE"),
        ("quantity", "9"),
    ];
    for path in &posts {
        let (status, page) = admin.post(path, &fields).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path} without a token: {page}"
        );
        let mut with_token = fields.to_vec();
        with_token.push(("csrf", &reader_csrf));
        let (status, page) = read_only.post(path, &with_token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} read-only: {page}");
    }
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(
        (
            &key.json["status"],
            &key.json["activations_limit"],
            &key.json["instances_count"]
        ),
        (&json!("active"), &json!(3), &json!(1))
    );
    assert_eq!(
        server.get("/products").await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(server.get("/license_updates").await.json["data"], json!([]));
}

async fn forms_write_through_the_api_rules(server: TestServer) {
    let (key_id, _) = seed(&server).await;
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let csrf = browser.csrf().await;
    let path = format!("/console/license-keys/{key_id}");

    // The API's rule: a limit below the current activations is refused, and said why.
    let edit = |limit: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("activations_limit", limit.to_owned()),
            ("expires_on", String::new()),
            ("heartbeat_interval", String::new()),
            ("seats_account_id", String::new()),
            ("seats_license_id", String::new()),
        ]
    };
    let form = edit("0");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post(&format!("{path}/edit"), &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("below the number of current activations"),
        "{page}"
    );
    let mut form = edit("7");
    form[2].1 = "yesterday".to_owned();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post(&format!("{path}/edit"), &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("`yesterday` is not a date"), "{page}");
    let form = edit("7");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        browser.post(&format!("{path}/edit"), &form).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=changed"))
    );
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(key.json["activations_limit"], 7);
    assert_eq!(
        key.json["expires_at"],
        Value::Null,
        "cleared as the form asked"
    );
    // A field left out of the request keeps its value; one sent empty is cleared.
    let partial = [("csrf", csrf.as_str()), ("heartbeat_interval", "600")];
    assert_eq!(
        browser.post(&format!("{path}/edit"), &partial).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=changed"))
    );
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(key.json["activations_limit"], 7, "{}", key.text);
    assert_eq!(key.json["heartbeat_interval"], 600, "{}", key.text);
    let cleared = [("csrf", csrf.as_str()), ("heartbeat_interval", "")];
    browser.post(&format!("{path}/edit"), &cleared).await;
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(key.json["heartbeat_interval"], Value::Null, "{}", key.text);

    // A limit too large is refused as such, not as "not a number", on the key's and the
    // new key's form alike.
    let form = edit("5000000000");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post(&format!("{path}/edit"), &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("must be at most 1000000"), "{page}");
    let issued = server.get(&format!("/license_keys/{key_id}")).await;
    let (customer, product) = (
        issued.json["customer_id"].as_str().unwrap().to_owned(),
        issued.json["product_id"].as_str().unwrap().to_owned(),
    );
    let new_key = [
        ("csrf", csrf.as_str()),
        ("customer_id", &customer),
        ("product_id", &product),
        ("activations_limit", "99999999999999999999999"),
    ];
    let (status, page) = browser.post("/console/license-keys/new", &new_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("must be at most 1000000"), "{page}");
    // A product's change form: a field left out keeps its value.
    let partial = [("csrf", csrf.as_str()), ("description", "Renamed")];
    let (status, _) = browser
        .post(&format!("/console/products/{product}"), &partial)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let changed = server.get(&format!("/products/{product}")).await;
    assert_eq!(changed.json["description"], "Renamed", "{}", changed.text);
    assert_eq!(
        changed.json["license_key_activations_limit"], 3,
        "{}",
        changed.text
    );
    assert_eq!(changed.json["name"], "Editor", "{}", changed.text);

    // An instance deactivated twice (two tabs): the second is told it is gone already.
    let instance = server
        .get(&format!("/license_key_instances?license_key_id={key_id}"))
        .await;
    let instance = instance.json["items"][0]["id"].as_str().unwrap().to_owned();
    let deactivate = format!("{path}/instances/{instance}/deactivate");
    assert_eq!(
        browser.post(&deactivate, &[("csrf", &csrf)]).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=deactivated"))
    );
    assert_eq!(
        browser.post(&deactivate, &[("csrf", &csrf)]).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=gone"))
    );
    let (_, page) = browser.get(&format!("{path}?done=gone")).await;
    assert!(page.contains("no longer among the key"), "{page}");

    assert_eq!(
        browser
            .post(&format!("{path}/disable"), &[("csrf", &csrf)])
            .await
            .0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        server.get(&format!("/license_keys/{key_id}")).await.json["status"],
        "disabled"
    );
    // A disabled key gets no license file: refused as the API refuses it.
    let (status, page) = browser
        .post(&format!("{path}/license-file"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    browser
        .post(&format!("{path}/enable"), &[("csrf", &csrf)])
        .await;
    let (status, file) = browser
        .post(&format!("{path}/license-file"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(file.starts_with("-----BEGIN LICENSE FILE-----"), "{file}");

    // A refused ledger write is shown, and nothing is written.
    let ledger = |quantity: &'static str, kind: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("account", "acme".to_owned()),
            ("license", "seats".to_owned()),
            ("update_type", kind.to_owned()),
            ("quantity", quantity.to_owned()),
            ("effective_from", String::new()),
        ]
    };
    let form = ledger("-3", "RELATIVE");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post("/console/ledger/pair", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("negative"), "{page}");
    // A quantity is read as the decimal typed, not a float: refused as the API refuses it.
    let form = ledger("0.300000000000000004", "ABSOLUTE");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post("/console/ledger/pair", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("6 digits"), "{page}");
    // A form whose bytes are not UTF-8 is refused, not kept with U+FFFD; a body that is
    // not a form is told what the console takes.
    let url = format!("{}/console/ledger/pair", server.url);
    let raw = format!(
        "csrf={csrf}&account=a%FFb&license=seats&update_type=ABSOLUTE&quantity=1&effective_from="
    );
    let sent = (browser.client.post(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(raw);
    let (status, page) = browser.send(sent).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("UTF-8"), "{page}");
    let sent = (browser.client.post(&url)).json(&json!({"csrf": csrf}));
    let (status, page) = browser.send(sent).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{page}");
    assert!(page.contains("application/x-www-form-urlencoded"), "{page}");
    assert_eq!(server.get("/license_updates").await.json["data"], json!([]));
    // A time typed with its zone is taken as typed, not given a second one.
    let mut form = ledger("4", "ABSOLUTE");
    form[5].1 = "2024-01-01T10:00:00+05:00".to_owned();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post("/console/ledger/pair", &form).await;
    let entries = server.get("/license_updates").await.json["data"].clone();
    assert_eq!(
        entries[0]["effectiveFrom"], "2024-01-01T05:00:00Z",
        "{entries}"
    );
    // Kept to its last digit, which a float would have lost.
    let form = ledger("123456789012.345678", "ABSOLUTE");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = browser.post("/console/ledger/pair", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let listed = server.get("/license_updates").await.text;
    assert!(listed.contains("123456789012.345678"), "{listed}");
}

/// A change form sent after the key was changed elsewhere changes only what its user
/// changed, and the other change stands; also when the form was refused once and sent
/// again from the page that said why.
async fn a_change_form_sent_late_keeps_what_changed_meanwhile(server: TestServer) {
    let (key_id, _) = seed(&server).await;
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let path = format!("/console/license-keys/{key_id}");
    let (_, page) = browser.get(&path).await;
    // Every field as a browser sends it: as the page shows it, the expiry as typed.
    let sent = |page: &str, expires_on: &str| -> Vec<(&'static str, String)> {
        let fields = [
            "csrf",
            "shown",
            "activations_limit",
            "expires_on",
            "heartbeat_interval",
            "seats_account_id",
            "seats_license_id",
        ];
        (fields.into_iter())
            .map(|name| match name {
                "expires_on" => (name, expires_on.to_owned()),
                _ => (name, input_value(page, name)),
            })
            .collect()
    };
    let post = async |form: Vec<(&str, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser.post(&format!("{path}/edit"), &form).await
    };
    let elsewhere = json!({"activations_limit": 10, "heartbeat_interval": 300});
    (server.patch(&format!("/license_keys/{key_id}"), elsewhere))
        .await
        .expect(200);

    let (status, refused) = post(sent(&page, "yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        post(sent(&refused, "2031-01-01")).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=changed"))
    );
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(key.json["activations_limit"], 10, "{}", key.text);
    assert_eq!(key.json["heartbeat_interval"], 300, "{}", key.text);
    let expiry = key.json["expires_at"].as_str().unwrap_or_default();
    assert!(expiry.starts_with("2031-01-01"), "{}", key.text);
}

/// A product's form sent with only its name changed changes only its name: a product
/// without a duration shows none chosen, and a description's line ends come back as a
/// browser sends a text area's, so neither reads as changed, nor undoes a change made
/// meanwhile.
async fn a_product_form_sent_unchanged_changes_nothing(server: TestServer) {
    let created = server
        .post(
            "/products",
            json!({"name": "P", "description": "line1\nline2"}),
        )
        .await;
    let id = created.expect(201).json["product_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let path = format!("/console/products/{id}");
    let (_, page) = browser.get(&path).await;
    assert!(page.contains("<option value=\"\" selected>"), "{page}");
    let duration = json!({"license_key_duration": {"count": 2, "interval": "Month"}});
    server
        .patch(&format!("/products/{id}"), duration)
        .await
        .expect(200);
    let fields = [
        ("csrf", input_value(&page, "csrf")),
        ("shown", input_value(&page, "shown")),
        ("name", "Renamed".to_owned()),
        ("description", "line1\r\nline2".to_owned()),
        ("activations_limit", input_value(&page, "activations_limit")),
        ("duration_count", input_value(&page, "duration_count")),
        ("duration_interval", String::new()),
        (
            "heartbeat_interval",
            input_value(&page, "heartbeat_interval"),
        ),
    ];
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        browser.post(&path, &form).await,
        (StatusCode::SEE_OTHER, format!("{path}?done=changed"))
    );
    let product = server.get(&format!("/products/{id}")).await;
    assert_eq!(product.json["name"], "Renamed", "{}", product.text);
    assert_eq!(
        product.json["description"], "line1\nline2",
        "{}",
        product.text
    );
    let kept = &product.json["license_key_duration"];
    assert_eq!(
        kept,
        &json!({"count": 2, "interval": "Month"}),
        "{}",
        product.text
    );
}

/// A key bound to fewer seats than it has activations keeps that figure as its limit when
/// unbound, which its activations exceed: its form takes the limit it gets instead.
async fn a_key_bound_to_seats_is_unbound_with_a_limit_from_its_form(server: TestServer) {
    let (key_id, text) = seed(&server).await;
    for name in ["desktop", "tablet"] {
        let body = json!({"license_key": text, "name": name});
        let activated = server
            .call(reqwest::Method::POST, "/licenses/activate", "", Some(body))
            .await;
        activated.expect(201);
    }
    let seats =
        json!({"accountId": "acme", "licenseId": "seats", "quantity": 1, "updateType": "ABSOLUTE"});
    server.post("/license_updates", seats).await.expect(200);
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let path = format!("/console/license-keys/{key_id}");
    let csrf = browser.csrf().await;
    let edit = async |limit: &str, account: &str, license: &str| {
        let form = [
            ("csrf", csrf.as_str()),
            ("activations_limit", limit),
            ("seats_account_id", account),
            ("seats_license_id", license),
        ];
        browser.post(&format!("{path}/edit"), &form).await
    };
    let changed = (StatusCode::SEE_OTHER, format!("{path}?done=changed"));
    // Bound as a browser sends the form: with the limit it showed.
    assert_eq!(edit("3", "acme", "seats").await, changed);
    let (_, page) = browser.get(&path).await;
    assert!(page.contains("name=\"activations_limit\""), "{page}");
    // One seat: the two newer machines fail validation, and their rows say so.
    for (name, over) in [("laptop", false), ("desktop", true), ("tablet", true)] {
        let row = (page.split("<tr>")).find(|row| row.contains(&format!("<td>{name}")));
        let row = row.unwrap_or_else(|| panic!("no row of {name}: {page}"));
        assert_eq!(row.contains(">over the seats<"), over, "{name}: {row}");
    }

    let (status, refused) = edit("", "", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.contains("name=\"activations_limit\""), "{refused}");
    assert_eq!(edit("5", "", "").await, changed);
    let key = server.get(&format!("/license_keys/{key_id}")).await;
    assert_eq!(key.json["activations_limit"], 5, "{}", key.text);
    assert_eq!(key.json["seats"], Value::Null, "{}", key.text);
}

/// An account's pairs, over a hundred, are all reached by their pages, each once.
async fn the_ledger_pairs_are_listed_page_by_page(server: TestServer) {
    // Two accounts, so that a page ends inside the first and the next starts in it.
    let pairs: Vec<(&str, String)> = (0..105)
        .map(|n| ("many", format!("m{n:03}")))
        .chain((0..20).map(|n| ("more", format!("n{n:03}"))))
        .collect();
    for (account, license) in &pairs {
        let entry = json!({"accountId": account, "licenseId": license, "quantity": 1, "updateType": "ABSOLUTE"});
        server.post("/license_updates", entry).await.expect(200);
    }
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let licenses_on = async |first: &str| {
        let (mut seen, mut path) = (Vec::new(), first.to_owned());
        for _ in 0..5 {
            let (status, page) = browser.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let shown = |l: &&(&str, String)| page.contains(&format!("<code>{}</code>", l.1));
            seen.extend(pairs.iter().filter(shown).cloned());
            let Some(at) = page.find("\">Next pairs") else {
                break;
            };
            let start = page[..at].rfind("href=\"").unwrap() + 6;
            path = page[start..at].replace("&amp;", "&");
        }
        seen
    };
    assert_eq!(licenses_on("/console/ledger").await, pairs);
    let many: Vec<_> = pairs
        .iter()
        .filter(|(a, _)| *a == "many")
        .cloned()
        .collect();
    assert_eq!(licenses_on("/console/ledger?account=many").await, many);
    let (status, page) = browser.get("/console/ledger?after_account=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
}

/// A pair's entries, over a page of them, are all reached by their pages, each once, and
/// show their metadata; entries effective at one instant, across a page's end, too.
async fn a_pairs_entries_are_listed_page_by_page_with_their_metadata(server: TestServer) {
    // Three entries a day: every page ends among entries of one instant.
    let entries: Vec<(usize, String)> = (0..60)
        .map(|n| (n, format!("2024-01-{:02}T00:00:00Z", 1 + n / 3)))
        .collect();
    for (n, at) in &entries {
        let entry = json!({"accountId": "acme", "licenseId": "seats", "quantity": n + 1,
            "updateType": "ABSOLUTE", "effectiveFrom": at,
            "metadata": {"reason": format!("renewal-{n}")}});
        server.post("/license_updates", entry).await.expect(200);
    }
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let mut seen: Vec<&usize> = Vec::new();
    let mut path = "/console/ledger/pair?account=acme&license=seats".to_owned();
    for _ in 0..4 {
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let shown = |n: &&usize| page.contains(&format!("renewal-{n}&quot;"));
        seen.extend(entries.iter().map(|(n, _)| n).filter(shown));
        let Some(at) = page.find("\">Older entries") else {
            break;
        };
        let start = page[..at].rfind("href=\"").unwrap() + 6;
        path = page[start..at].replace("&amp;", "&");
    }
    seen.sort();
    assert_eq!(seen, entries.iter().map(|(n, _)| n).collect::<Vec<_>>());
}

async fn the_ledger_page_charts_the_pairs_quantity(server: TestServer) {
    for (quantity, kind, at) in [
        (10, "ABSOLUTE", "2024-03-01T00:00:00Z"),
        (-3, "RELATIVE", "2024-03-10T12:00:00Z"),
        (2, "RELATIVE", "2024-03-20T00:00:00Z"),
    ] {
        server
            .post(
                "/license_updates",
                json!({"accountId": "acme", "licenseId": "seats", "quantity": quantity,
                       "updateType": kind, "effectiveFrom": at}),
            )
            .await
            .expect(200);
    }
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let (status, page) = browser
        .get("/console/ledger/pair?account=acme&license=seats&month=2024-03")
        .await;
    assert_eq!(status, StatusCode::OK);
    let values = |attribute: &str| -> Vec<String> {
        page.match_indices(&format!("{attribute}=\""))
            .map(|(at, found)| {
                let rest = &page[at + found.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    };
    assert_eq!(values("data-quantity"), ["10", "7", "9"]);
    let maxima = values("data-max");
    assert_eq!(maxima.len(), 31);
    assert_eq!(maxima[0], "10");
    assert_eq!(maxima[9], "10", "the 10th: 10 until noon");
    assert_eq!(maxima[10], "7");
    assert_eq!(maxima[19], "9");
    assert_eq!(maxima[30], "9");

    // The list of pairs shows each pair's quantity now, on its own row.
    for (account, quantity) in [("acme", 4), ("beta", 11), ("gamma", 6)] {
        server
            .post(
                "/license_updates",
                json!({"accountId": account, "licenseId": "seats", "quantity": quantity,
                       "updateType": "ABSOLUTE"}),
            )
            .await
            .expect(200);
    }
    let (status, page) = browser.get("/console/ledger").await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<(String, String)> = (page.split("<tr>").skip(2))
        .map(|row| {
            let cell = |from: &str, to: &str| {
                let start = row.find(from).unwrap() + from.len();
                row[start..start + row[start..].find(to).unwrap()].to_owned()
            };
            (cell("<td><code>", "<"), cell("<td class=\"num\">", "<"))
        })
        .collect();
    let expected = [("acme", "4"), ("beta", "11"), ("gamma", "6")];
    assert_eq!(
        rows,
        expected.map(|(a, q)| (a.to_owned(), q.to_owned())),
        "{page}"
    );
}

/// Sessions live in the database: one opened through one process opens pages of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_shared_by_every_process_on_postgres() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let url = database.url.clone();
    let first = TestServer::start_on(database, Backend::Postgres, ServerSettings::default()).await;
    let second = TestServer::start_on(
        TestDatabase::alias(url),
        Backend::Postgres,
        ServerSettings::default(),
    )
    .await;
    let mut browser = Browser::new(&first);
    browser.sign_in(&first.key).await;
    browser.base = second.url.clone();
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = csrf_of(&page);
    browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    browser.base = first.url.clone();
    assert_eq!(browser.get("/console").await.0, StatusCode::SEE_OTHER);
}

/// A console session spends its API key's requests under `--api-key-rate-limit`, from
/// the same count as the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_counts_against_its_keys_rate_limit() {
    let settings = ServerSettings {
        api_key_rate_limit: 3,
        ..Default::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    let csrf = browser.csrf().await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(browser.get("/console/customers").await.0);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let session = browser.session.clone().unwrap();
    let limited = (browser.client)
        .get(format!("{}/console/customers", browser.base))
        .header(COOKIE, format!("licensed_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"), "{limited:?}");
    server.get("/customers").await.expect(429);

    // Signing out is never refused, over the limit or not.
    let (status, _) = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.get("/console").await,
        (StatusCode::SEE_OTHER, "/console/sign-in".to_owned()),
        "signed out"
    );
}

/// A console page runs under the request timeout, as an API call does, and is counted
/// in the metrics: a page waiting on a locked table answers 503 instead of holding its
/// connection for as long as the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_page_answers_within_the_request_timeout_and_is_counted() {
    let settings = ServerSettings {
        request_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let Some(server) = TestServer::start_with(Backend::Postgres, settings).await else {
        return;
    };
    let mut browser = Browser::new(&server);
    browser.sign_in(&server.key).await;
    assert_eq!(browser.get("/console").await.0, StatusCode::OK);
    let holder = server.database.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE license_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("did not complete within 500 ms"), "{page}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    let metrics = server.get("/metrics").await;
    for counted in [
        r#"route="/console",status="200""#,
        r#"route="/console",status="503""#,
        r#"route="/console/sign-in",status="303""#,
    ] {
        assert!(
            metrics.text.contains(counted),
            "{counted}: {}",
            metrics.text
        );
    }
}
