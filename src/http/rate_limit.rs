//! Request rate limits, in requests per minute: per client IP on the public endpoints and
//! per API key on the others. Counted in each process's memory: with several processes
//! behind a load balancer, each enforces the limit on the requests it sees.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::HeaderName;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::ApiError;
use crate::domain::auth::KeyDigest;

#[derive(Clone, Default)]
pub struct RateLimits {
    public: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    api_key: Option<Arc<DefaultKeyedRateLimiter<[u8; 32]>>>,
    client_ip_header: Option<HeaderName>,
}

impl RateLimits {
    /// `0` turns a limit off. `client_ip_header` is the header in which a reverse proxy in
    /// front of the server names the client's address.
    pub fn new(
        public_per_minute: u32,
        api_key_per_minute: u32,
        client_ip_header: Option<HeaderName>,
    ) -> Self {
        Self {
            public: limiter(public_per_minute),
            api_key: limiter(api_key_per_minute),
            client_ip_header,
        }
    }

    /// Counts a public request against its client's address.
    pub fn check_public(&self, request: &Parts) -> Result<(), ApiError> {
        let Some(limiter) = self.public.as_deref() else {
            return Ok(());
        };
        match self.client_ip(request) {
            Some(ip) => check(Some(limiter), &client_of(ip)),
            None => Ok(()),
        }
    }

    /// The address in the proxy's header, else the connection's. A proxy appends the
    /// address it saw to the header's list: the last one is the proxy's word, the ones
    /// before it are whatever the client sent.
    fn client_ip(&self, request: &Parts) -> Option<IpAddr> {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            let value = request.headers.get_all(name).iter().next_back();
            let address = value.and_then(|v| v.to_str().ok()).and_then(last_address);
            if address.is_none() {
                unreadable_header(name);
            }
            address
        });
        forwarded.or_else(|| {
            (request.extensions.get::<ConnectInfo<SocketAddr>>()).map(|ConnectInfo(peer)| peer.ip())
        })
    }

    /// Counted only for keys that exist: unknown keys must not grow the table.
    pub fn check_api_key(&self, key: &KeyDigest) -> Result<(), ApiError> {
        check(self.api_key.as_deref(), &key.0)
    }

    pub fn limits_api_keys(&self) -> bool {
        self.api_key.is_some()
    }

    /// Forgets idle clients now and then, so the tables stay small.
    pub fn spawn_cleanup(&self) {
        if self.public.is_none() && self.api_key.is_none() {
            return;
        }
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Some(l) = &limits.public {
                    l.retain_recent();
                }
                if let Some(l) = &limits.api_key {
                    l.retain_recent();
                }
            }
        });
    }
}

/// The last address of a list such as `203.0.113.7, 10.0.0.1`, with or without a port
/// (`[2001:db8::1]:443`) or brackets.
fn last_address(list: &str) -> Option<IpAddr> {
    let last = list.rsplit(',').next()?.trim();
    let unbracketed = last.trim_start_matches('[').trim_end_matches(']');
    (unbracketed.parse().ok()).or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Whom a request is counted against: its IPv4 address, or the /64 network of its IPv6
/// address, since one host commonly holds a whole /64 and could change address at will.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// Says once that the proxy's header was missing or held no address: its requests then
/// count against the connection's address, the proxy's, which all of them share.
fn unreadable_header(name: &HeaderName) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            "a request came without an address as the last entry of its {name} header; such \
             requests count against the proxy's address (said once)"
        );
    });
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_minute: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_minute)
        .map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs() + 1,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_address_of_a_proxy_header_is_read_in_any_of_its_forms() {
        let ip = |text: &str| text.parse::<IpAddr>().ok();
        for (header, expected) in [
            ("203.0.113.7", ip("203.0.113.7")),
            ("10.9.9.9, 203.0.113.7", ip("203.0.113.7")),
            ("203.0.113.7:8443", ip("203.0.113.7")),
            ("2001:db8::1", ip("2001:db8::1")),
            ("[2001:db8::1]", ip("2001:db8::1")),
            ("198.51.100.1, [2001:db8::1]:443", ip("2001:db8::1")),
            ("203.0.113.7, unknown", None),
            ("203.0.113.7,", None),
            ("", None),
        ] {
            assert_eq!(last_address(header), expected, "{header:?}");
        }
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network() {
        let client = |text: &str| client_of(text.parse().unwrap());
        assert_eq!(
            client("2001:db8:1:2:aaaa::1"),
            client("2001:db8:1:2:bbbb::2")
        );
        assert_eq!(
            client("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:203.0.113.7"), client("203.0.113.7"));
        assert_ne!(client("203.0.113.7"), client("203.0.113.8"));
    }
}
