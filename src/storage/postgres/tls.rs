//! TLS to PostgreSQL, as libpq's `sslmode` in the URL asks:
//! - `disable`: never;
//! - `prefer` (the default): when the server offers it;
//! - `require`: always, or no connection;
//! - `verify-ca`: always, with a certificate signed by one in `sslrootcert=PATH`;
//! - `verify-full`: as `verify-ca`, and naming the host connected to.
//!
//! As with libpq, `prefer` and `require` check the certificate's signer only when
//! `sslrootcert` is given: without it they keep the traffic from being read on the way,
//! not a server from posing as another.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::error::OpenError;

/// How to connect, read from a `postgres://` URL.
pub struct Tls {
    /// The URL without the parameters tokio-postgres does not know (`sslrootcert`, and
    /// `sslmode=verify-ca` or `verify-full`); it parses the others itself.
    pub url: String,
    /// The mode to set in place of a `verify-…` one; `None` leaves tokio-postgres's.
    mode: Option<SslMode>,
    pub connector: Connector,
}

impl Tls {
    /// Sets the mode read here on tokio-postgres's configuration (parsed from [`Self::url`]),
    /// and refuses `verify-full` where there is no host name to check the certificate
    /// against: a Unix socket, or a `hostaddr` alone.
    pub fn configure(&self, config: &mut Config) -> Result<(), OpenError> {
        if let Some(mode) = self.mode {
            config.ssl_mode(mode);
        }
        let named = (config.get_hosts().iter()).any(|host| matches!(host, Host::Tcp(_)));
        if self.connector.checks_name && !named {
            return Err(OpenError::Failed(
                "sslmode=verify-full needs a host name in the URL to check the server's \
                 certificate against (not a Unix socket, nor a hostaddr alone)"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn from_url(url: &str) -> Result<Self, OpenError> {
        // The query begins after the credentials, which may hold a `?` of their own.
        let authority = url.rfind('@').map_or(0, |at| at + 1);
        let (base, query) = match url[authority..].find('?') {
            Some(at) => url.split_at(authority + at),
            None => (url, ""),
        };
        let (mut mode, mut root_cert) = ("prefer".to_owned(), None);
        let mut rest = Vec::new();
        for pair in query.trim_start_matches('?').split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "sslmode" => {
                    mode = decoded();
                    if !mode.starts_with("verify-") {
                        rest.push(pair);
                    }
                }
                "sslrootcert" => root_cert = Some(decoded()),
                "" => {}
                _ => rest.push(pair),
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signed_by_roots = |path: &str| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider.clone())
                .build()
                .map_err(|e| OpenError::Failed(format!("sslrootcert {path}: {e}")))
        };
        let lenient = |chain| Arc::new(Lenient(chain, provider.clone()));
        let (ssl_mode, verifier): (_, Arc<dyn ServerCertVerifier>) =
            match (mode.as_str(), root_cert.as_deref()) {
                ("disable", _) => (None, lenient(None)),
                // As libpq does, these modes check the signer too when given roots.
                ("prefer" | "require", roots) => {
                    (None, lenient(roots.map(signed_by_roots).transpose()?))
                }
                ("verify-ca", Some(roots)) => (
                    Some(SslMode::Require),
                    lenient(Some(signed_by_roots(roots)?)),
                ),
                ("verify-full", Some(roots)) => (Some(SslMode::Require), signed_by_roots(roots)?),
                ("verify-ca" | "verify-full", None) => {
                    return Err(OpenError::Failed(format!(
                        "sslmode={mode} needs sslrootcert=PATH: the CA certificates to check \
                         the server's certificate against"
                    )));
                }
                (other, _) => {
                    return Err(OpenError::Failed(format!(
                        "unsupported sslmode `{other}`: use disable, prefer, require, verify-ca \
                         or verify-full"
                    )));
                }
            };
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| OpenError::Failed(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            url: match rest.is_empty() {
                true => base.to_owned(),
                false => format!("{base}?{}", rest.join("&")),
            },
            mode: ssl_mode,
            connector: Connector {
                inner: MakeRustlsConnect::new(config),
                checks_name: mode == "verify-full",
            },
        })
    }
}

/// The TLS connector. tokio-postgres asks for one with an empty host name when it
/// connects to a Unix socket (where PostgreSQL offers no TLS) or to a `hostaddr`
/// without a `host`; rustls refuses an empty name, so another stands in for it where
/// no name is checked (and [`Tls::configure`] refuses `verify-full` there).
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    checks_name: bool,
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = match hostname {
            "" if !self.checks_name => "localhost",
            name => name,
        };
        MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, name)
    }
}

/// The certificates of a PEM file, as trust anchors.
fn roots(path: &str) -> Result<RootCertStore, OpenError> {
    let failed = |e: &dyn std::fmt::Display| OpenError::Failed(format!("sslrootcert {path}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| failed(&e))? {
        roots
            .add(cert.map_err(|e| failed(&e))?)
            .map_err(|e| failed(&e))?;
    }
    if roots.is_empty() {
        return Err(failed(&"holds no certificate"));
    }
    Ok(roots)
}

/// Every mode but `verify-full`: with roots, a certificate signed by one of them, whatever
/// host it names; without, any certificate. Either way the handshake must be signed by the
/// certificate's key.
#[derive(Debug)]
struct Lenient(Option<Arc<WebPkiServerVerifier>>, Arc<CryptoProvider>);

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.0 else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signed,
            &self.1.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signed,
            &self.1.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}
