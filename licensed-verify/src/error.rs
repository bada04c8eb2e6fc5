//! Every way a verification can fail, as one enum an app can match on.

use chrono::{DateTime, Utc};

/// Why a public key, a license file or a signed response was refused.
///
/// New variants may be added; match the ones you act on and treat the rest as "invalid",
/// or decide by [`kind`](Self::kind).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The public key is neither 64 hex digits nor an Ed25519 `PUBLIC KEY` PEM.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// The text is not enclosed in `-----BEGIN LICENSE FILE-----` / `-----END LICENSE FILE-----`
    /// (or the `MACHINE FILE` pair): cut short, relabelled, or with text around it (the
    /// whole file is what was issued, so nothing else may be in it).
    #[error(
        "malformed license file: it must start with -----BEGIN LICENSE FILE----- (or MACHINE \
         FILE) and end with the matching -----END line, with nothing before or after them"
    )]
    MalformedArmor,
    /// A part that must be standard base64 is not; the field names it (`body` or `sig`).
    #[error("malformed license file: {field} is not base64")]
    MalformedBase64 {
        /// Which part failed to decode.
        field: &'static str,
    },
    /// The decoded body is not the JSON `{"enc", "sig", "alg"}`.
    #[error("malformed license file envelope: {0}")]
    MalformedEnvelope(serde_json::Error),
    /// `alg` (of a file) or `algorithm` (of a signature header) is not one this crate knows.
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// `enc` does not have the shape its `alg` says: base64, or `ciphertext.iv.tag`.
    #[error("malformed enc: {0}")]
    MalformedEnc(&'static str),
    /// The Ed25519 signature does not verify under the public key: the data was changed,
    /// or it was signed by another key.
    #[error("signature does not verify")]
    BadSignature,
    /// The key id named by the file or response is not the one the [`PublicKey`](crate::PublicKey)
    /// was given with [`with_key_id`](crate::PublicKey::with_key_id). A hint that the data
    /// was signed by another key, such as one rotated in since, and not a proof: the name
    /// is read whether or not the signature holds, so anyone can write one. Refuse the
    /// data as for [`BadSignature`](Self::BadSignature).
    #[error("signed by key {found:?}, expected {expected:?}")]
    WrongKeyId {
        /// The key id the public key was given.
        expected: String,
        /// The key id the signed data names.
        found: String,
    },
    /// A machine file bound to a fingerprint was given none.
    #[error("a machine file needs the machine's fingerprint")]
    FingerprintRequired,
    /// A fingerprint was given, so a machine file for that machine was expected, and the
    /// file is a license file, which binds no machine.
    #[error("a machine file is needed for this machine, and this is a license file")]
    MachineFileRequired,
    /// AES-256-GCM refused the ciphertext: the license key (or the fingerprint) is wrong.
    #[error("decryption failed: wrong license key or fingerprint")]
    DecryptionFailed,
    /// The decrypted payload is not the JSON SPEC §6 describes.
    #[error("malformed payload: {0}")]
    MalformedPayload(serde_json::Error),
    /// The file is valid but was issued for another license key.
    #[error("the license file is for another license key")]
    LicenseKeyMismatch,
    /// The machine file is valid but was issued for another machine.
    #[error("the machine file is for another machine")]
    FingerprintMismatch,
    /// The file's `meta.expiry` has passed: ask the server for a new one.
    #[error("the license file expired at {expiry}")]
    Expired {
        /// `meta.expiry`.
        expiry: DateTime<Utc>,
    },
    /// The license key's own expiry (`data.attributes.expiry`) has passed.
    #[error("the license key expired at {expiry}")]
    KeyExpired {
        /// `data.attributes.expiry`.
        expiry: DateTime<Utc>,
    },
    /// The clock reads more than 5 minutes before the file was issued: it was set back,
    /// perhaps to keep using an expired file.
    #[error("the clock is behind: the file was issued at {issued}")]
    ClockBehind {
        /// `meta.issued`.
        issued: DateTime<Utc>,
    },
    /// The `Licensed-Signature` header is not `keyid="…", algorithm="…", signature="…"`.
    #[error("malformed Licensed-Signature header: {0}")]
    MalformedSignatureHeader(&'static str),
}

/// What an app does about an [`Error`], whatever its variant: [`Error::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not what the server signed for this public key: changed, cut short, forged, signed
    /// by another key (one rotated out, say), or not a license file or signature at all.
    /// Refuse it.
    Invalid,
    /// Signed by the server, but for another license key or machine, or the license key or
    /// fingerprint the app passed does not open it: the wrong file was copied in, or the
    /// app passed the wrong values. Refuse it, and ask for the file of this key and machine.
    NotForThis,
    /// The file's own time is up (`meta.expiry`): fetch a fresh one while online.
    FileExpired,
    /// The license key itself has expired: a fresh file will not help; the customer
    /// renews.
    KeyExpired,
    /// The clock reads before the file was issued: it was set back.
    ClockBehind,
    /// The public key the app passed is not a key: a mistake in the app, not in the file.
    BadPublicKey,
}

impl Error {
    /// What an app does about this error.
    ///
    /// ```
    /// use licensed_verify::{ErrorKind, LicenseFile};
    ///
    /// let error = LicenseFile::parse("not a license file").unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Invalid);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPublicKey(_) => ErrorKind::BadPublicKey,
            Error::MalformedArmor
            | Error::MalformedBase64 { .. }
            | Error::MalformedEnvelope(_)
            | Error::UnknownAlgorithm(_)
            | Error::MalformedEnc(_)
            | Error::BadSignature
            | Error::WrongKeyId { .. }
            | Error::MalformedPayload(_)
            | Error::MalformedSignatureHeader(_) => ErrorKind::Invalid,
            Error::FingerprintRequired
            | Error::MachineFileRequired
            | Error::DecryptionFailed
            | Error::LicenseKeyMismatch
            | Error::FingerprintMismatch => ErrorKind::NotForThis,
            Error::Expired { .. } => ErrorKind::FileExpired,
            Error::KeyExpired { .. } => ErrorKind::KeyExpired,
            Error::ClockBehind { .. } => ErrorKind::ClockBehind,
        }
    }
}
