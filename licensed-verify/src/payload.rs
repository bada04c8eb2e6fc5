//! The payload a license file carries (SPEC §6), as typed structs.
//!
//! Fields whose type SPEC §6 does not fix are kept as [`serde_json::Value`]; unknown
//! fields are ignored, so a server that adds some does not break old apps.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CLOCK_TOLERANCE, Error, FileKind};

/// A decoded payload together with the JSON it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Contents {
    /// The payload, typed.
    pub payload: Payload,
    /// The payload exactly as the server wrote it.
    pub json: String,
}

impl Contents {
    pub(crate) fn from_json(json: Vec<u8>) -> Result<Self, Error> {
        let payload = serde_json::from_slice(&json).map_err(Error::MalformedPayload)?;
        // serde_json accepted it, so it is UTF-8.
        let json = String::from_utf8_lossy(&json).into_owned();
        Ok(Self { payload, json })
    }
}

/// `{"meta", "data", "included"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// When the file was issued and until when it holds.
    pub meta: Meta,
    /// The license key.
    pub data: License,
    /// For a machine file, the machine; empty for a license file.
    #[serde(default)]
    pub included: Vec<Machine>,
}

impl Payload {
    /// The machine a machine file was issued for.
    pub fn machine(&self) -> Option<&Machine> {
        self.included.iter().find(|item| item.kind == "machines")
    }

    /// Whether the file of `kind` this payload came from is for the machine `fingerprint`
    /// names, as [`verify_license_file`](crate::verify_license_file) checks it: given one,
    /// a machine file for that machine (a license file is [`Error::MachineFileRequired`],
    /// another machine's file [`Error::FingerprintMismatch`]); given none, a license file
    /// or a machine file bound to no fingerprint ([`Error::FingerprintRequired`]).
    pub fn check_machine(&self, kind: FileKind, fingerprint: Option<&str>) -> Result<(), Error> {
        if kind == FileKind::License && fingerprint.is_some() {
            return Err(Error::MachineFileRequired);
        }
        let issued_for = (self.machine()).and_then(|m| m.attributes.fingerprint.as_deref());
        match (fingerprint, issued_for) {
            (None, Some(_)) => Err(Error::FingerprintRequired),
            (Some(given), bound) if bound != Some(given) => Err(Error::FingerprintMismatch),
            _ => Ok(()),
        }
    }

    /// The checks of [`verify_license_file`](crate::verify_license_file) that need only the
    /// payload and the clock: `now` is not more than [`CLOCK_TOLERANCE`] before
    /// `meta.issued` ([`Error::ClockBehind`]), nor after the license key's own expiry
    /// ([`Error::KeyExpired`], told first when both have passed: a fresh file would not
    /// help), nor after `meta.expiry` ([`Error::Expired`]).
    ///
    /// For a plain file read without its license key ([`LicenseFile::verify`] then
    /// [`LicenseFile::decrypt`]), this is what is left to check; it does not tell whose
    /// key or machine the file is for.
    ///
    /// [`LicenseFile::verify`]: crate::LicenseFile::verify
    /// [`LicenseFile::decrypt`]: crate::LicenseFile::decrypt
    pub fn check_time(&self, now: SystemTime) -> Result<(), Error> {
        let meta = &self.meta;
        let behind = now
            .checked_add(CLOCK_TOLERANCE)
            .is_some_and(|tolerated| tolerated < SystemTime::from(meta.issued));
        if behind {
            return Err(Error::ClockBehind {
                issued: meta.issued,
            });
        }
        // A key that has expired is told first: a fresh file would not help.
        let key_expiry = self.data.attributes.expiry;
        if let Some(expiry) = key_expiry.filter(|expiry| now > SystemTime::from(*expiry)) {
            return Err(Error::KeyExpired { expiry });
        }
        if now > SystemTime::from(meta.expiry) {
            return Err(Error::Expired {
                expiry: meta.expiry,
            });
        }
        Ok(())
    }
}

/// `meta`: the file's own validity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// When the file was issued.
    pub issued: DateTime<Utc>,
    /// `issued + ttl`: after it the file is expired, whatever the key's own expiry.
    pub expiry: DateTime<Utc>,
    /// The file's lifetime in seconds.
    pub ttl: u64,
    /// The id of the signing key that signed the file.
    pub key_id: String,
}

/// `data`: `{"type": "licenses", "id": "lic_…", "attributes": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// `"licenses"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The license key's id.
    pub id: String,
    /// What the license key says.
    pub attributes: LicenseAttributes,
}

/// `data.attributes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseAttributes {
    /// The license key itself.
    pub key: String,
    /// The key's status when the file was issued (e.g. `active`).
    pub status: String,
    /// The key's own expiry; `None` when it does not expire.
    #[serde(default)]
    pub expiry: Option<DateTime<Utc>>,
    /// The activation limit; `None` when unlimited.
    #[serde(default)]
    pub max_machines: Option<u64>,
    /// The product the key is for.
    #[serde(default)]
    pub product: Value,
    /// The customer the key belongs to.
    #[serde(default)]
    pub customer: Value,
    /// The product's metadata.
    #[serde(default)]
    pub metadata: Value,
    /// The seats the key is bound to, if any.
    #[serde(default)]
    pub seats: Value,
}

/// An entry of `included`: `{"type": "machines", "id": "lki_…", "attributes": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `"machines"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The instance's id.
    pub id: String,
    /// The machine's name and fingerprint.
    pub attributes: MachineAttributes,
}

/// `included[].attributes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineAttributes {
    /// The instance's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The machine's fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
}
