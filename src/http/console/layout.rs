//! The console's page shell: one layout for every page (landmarks, a skip link, the
//! navigation, who is signed in and the sign-out form), and the pages for errors.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::session::Signed;

/// The console's sections, in the order the navigation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Customers,
    Products,
    LicenseKeys,
    Ledger,
    Webhooks,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Overview,
        Section::Customers,
        Section::Products,
        Section::LicenseKeys,
        Section::Ledger,
        Section::Webhooks,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Customers => "Customers",
            Section::Products => "Products",
            Section::LicenseKeys => "License keys",
            Section::Ledger => "Ledger",
            Section::Webhooks => "Webhooks",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Overview => "/console",
            Section::Customers => "/console/customers",
            Section::Products => "/console/products",
            Section::LicenseKeys => "/console/license-keys",
            Section::Ledger => "/console/ledger",
            Section::Webhooks => "/console/webhooks",
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · licensed" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A page of a signed-in session.
pub fn page(signed: &Signed, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "licensed" }
                    span.who {
                        "Business " code { (signed.principal.business_id) }
                        @if signed.principal.read_only {
                            " " span.badge title="This API key may read but not change anything" { "read-only" }
                        }
                    }
                    form.sign-out method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(signed.session.csrf_token);
                        button.link type="submit" { "Sign out" }
                    }
                }
                nav.sections aria-label="Console" {
                    ul {
                        @for s in Section::ALL {
                            li {
                                @if s == section {
                                    a href=(s.path()) aria-current="page" { (s.label()) }
                                } @else {
                                    a href=(s.path()) { (s.label()) }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session: sign-in, and errors.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand-line { a.brand href="/console" { "licensed" } }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page saying what went wrong, with the status an API call would have got.
pub fn error_page(status: StatusCode, message: &str) -> (StatusCode, Markup) {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p.alert role="alert" { (message) }
        p { a href="/console" { "Back to the console" } }
    };
    (status, bare(title, body))
}

/// A message at the top of a page after a form: what happened, or what was wrong.
pub fn notice(kind: Notice, text: &str) -> Markup {
    match kind {
        Notice::Done => html! { p.notice role="status" { (text) } },
        Notice::Refused => html! { p.alert role="alert" { (text) } },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Done,
    Refused,
}
