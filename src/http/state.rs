//! What every handler can reach ([`AppState`]) and how the server is configured beyond
//! its listener and database ([`ServerSettings`]).

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;

use super::page_token::TokenSealer;
use super::rate_limit::RateLimits;
use super::signing::Signers;
use crate::domain::signing::MasterKey;
use crate::jobs::dispatcher::{self, Deliveries, DispatchOptions};
use crate::storage::Store;

/// What every handler can reach. Extractors and middleware clone it for every request,
/// so it is one pointer: a clone is one reference count, not a copy of every field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub(super) tokens: TokenSealer,
    pub(super) limits: RateLimits,
    /// Opens the signing keys' private halves when they are sealed.
    pub(super) master_key: Option<MasterKey>,
    /// The active signing keys, opened.
    pub(super) signers: Signers,
    pub(super) request_timeout: Duration,
    /// Console cookies carry `Secure`.
    pub(super) console_secure_cookie: bool,
    /// How many attempts a webhook message gets (a retried one gets the last of them).
    pub(super) webhook_attempts: u32,
    /// The webhook dispatcher, stopped with the server.
    pub deliveries: Deliveries,
}

/// How the server behaves, beyond where it listens and which database it uses.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Requests per minute per client IP on `/licenses/*`; 0 is unlimited.
    pub public_rate_limit: u32,
    /// Requests per minute per API key elsewhere; 0 is unlimited.
    pub api_key_rate_limit: u32,
    /// Serve `/metrics` on the main router (false when it has a listener of its own).
    pub metrics_on_main: bool,
    /// The longest a request may take, body upload included, before it fails: 408 while
    /// its body is still arriving, else 503.
    pub request_timeout: Duration,
    /// The header in which a reverse proxy names the client's address; without it, the
    /// public rate limit counts by the connection's peer.
    pub client_ip_header: Option<HeaderName>,
    /// Seals and opens the signing keys' private halves (`LICENSED_MASTER_KEY`).
    pub master_key: Option<MasterKey>,
    /// How webhooks are delivered.
    pub webhooks: DispatchOptions,
    /// Mark the console's cookies `Secure` (behind a proxy that terminates TLS).
    pub console_secure_cookie: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            public_rate_limit: 600,
            api_key_rate_limit: 0,
            metrics_on_main: true,
            request_timeout: Duration::from_secs(30),
            client_ip_header: None,
            master_key: None,
            webhooks: DispatchOptions::default(),
            console_secure_cookie: false,
        }
    }
}

impl AppState {
    pub async fn new(store: Arc<dyn Store>, settings: &ServerSettings) -> anyhow::Result<Self> {
        let tokens = TokenSealer::new(&store.token_secret().await?);
        let limits = RateLimits::new(
            settings.public_rate_limit,
            settings.api_key_rate_limit,
            settings.client_ip_header.clone(),
        );
        limits.spawn_cleanup();
        crate::jobs::sweeper::spawn(Arc::downgrade(&store));
        let deliveries = dispatcher::spawn(
            Arc::downgrade(&store),
            settings.master_key.clone(),
            settings.webhooks.clone(),
        )?;
        Ok(Self(Arc::new(Shared {
            store,
            tokens,
            limits,
            master_key: settings.master_key.clone(),
            signers: Signers::default(),
            request_timeout: settings.request_timeout,
            webhook_attempts: settings.webhooks.schedule.attempts(),
            console_secure_cookie: settings.console_secure_cookie,
            deliveries,
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
