//! Connecting to PostgreSQL: the settings of every connection the pool opens (TLS, the
//! timeouts that notice a server gone silent) and of the pool itself.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::error::with_causes;
use super::tls::Tls;
use crate::storage::error::OpenError;
use crate::storage::store::StorageOptions;

/// A connection whose server stops acknowledging what it sent is closed after this long.
pub(super) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is probed after this long without traffic, then at the interval.
pub(super) const KEEPALIVES_IDLE: Duration = Duration::from_secs(15);
pub(super) const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// `tokio-postgres`'s own idle time before the first probe.
const DRIVER_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A server that vanishes without closing its connections (a host that dies, a failover
/// that moves its address) would leave them open: TCP gives up on a connection with a
/// statement in flight after about 15 minutes, and never on an idle one, and each request
/// that took one would wait out its timeout. With these settings the kernel closes such
/// a connection within about half a minute, and the pool replaces it. Settings the URL
/// gives (`tcp_user_timeout`, `keepalives`, `keepalives_idle`, `keepalives_interval`) win.
pub(super) fn notice_silent_servers(config: &mut tokio_postgres::Config) {
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives_idle() == DRIVER_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
}

/// The pool of connections to the database that `options` names, with their settings.
pub(super) fn pool(options: &StorageOptions) -> Result<Pool, OpenError> {
    let tls = Tls::from_url(&options.url)?;
    let mut config: tokio_postgres::Config = tls
        .url
        .parse()
        .map_err(|e| OpenError::Failed(format!("invalid PostgreSQL URL: {}", with_causes(&e))))?;
    tls.configure(&mut config)?;
    config.connect_timeout(options.timeout);
    notice_silent_servers(&mut config);
    // A connection that lost its server is noticed by the driver and never handed out
    // again; a per-checkout test query would cost a round trip on every request.
    let manager = Manager::from_config(
        config,
        tls.connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.max_connections as usize)
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| OpenError::Failed(e.to_string()))
}
