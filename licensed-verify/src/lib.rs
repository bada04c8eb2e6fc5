//! Offline checks of what a `licensed` server signs (SPEC §6): license and machine files,
//! and signed answers of `/licenses/*`. No network, no async; every failure is an
//! [`Error`] variant an app can match on, or decide by its [`ErrorKind`].
//!
//! An app compiles its business's public key in (`licensed signing-key show` prints it as
//! hex and as PEM) and checks a license file it was given, on every start:
//!
//! ```
//! use std::time::SystemTime;
//!
//! use licensed_verify::{ErrorKind, PublicKey, verify_license_file};
//!
//! const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
//! MCowBQYDK2VwAyEAKSc8CmrohddJKM4+cJUG2tCT9+KzrfTpo7P0f8KPNlQ=
//! -----END PUBLIC KEY-----";
//!
//! /// Whether this machine may run, given the machine file saved at activation.
//! fn licensed(machine_file: &str, license_key: &str, fingerprint: &str) -> bool {
//!     let key = PublicKey::parse(PUBLIC_KEY).expect("the compiled-in key is valid");
//!     match verify_license_file(machine_file, &key, license_key, Some(fingerprint), SystemTime::now()) {
//!         Ok(contents) => contents.payload.data.attributes.status == "active",
//!         Err(error) => {
//!             match error.kind() {
//!                 // Online again? Ask the server for a fresh file (POST /licenses/license_file).
//!                 ErrorKind::FileExpired => {}
//!                 // A fresh file will not help: the customer renews.
//!                 ErrorKind::KeyExpired => {}
//!                 _ => eprintln!("license refused: {error}"),
//!             }
//!             false
//!         }
//!     }
//! }
//! # assert!(!licensed("", "KEY", "fingerprint"));
//! ```
//!
//! [`LicenseFile`] offers the same steps one by one (parse, [verify](LicenseFile::verify),
//! [decrypt](LicenseFile::decrypt)); [`verify_response`] checks a signed answer.

#![warn(missing_docs)]

mod error;
mod file;
mod key;
mod payload;
mod response;

use std::time::{Duration, SystemTime};

pub use error::{Error, ErrorKind};
pub use file::{Algorithm, FileKind, LicenseFile};
pub use key::PublicKey;
pub use payload::{
    Contents, License, LicenseAttributes, Machine, MachineAttributes, Meta, Payload,
};
pub use response::verify_response;

/// How far the clock may run behind a file's `meta.issued` (the server's clock and the
/// app's never agree exactly) before it counts as set back.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Parses, verifies and decrypts a license or machine file, then checks that it holds at
/// `now`:
///
/// - the signature verifies under `key` (and names its key id, if the key has one: a
///   file that names another is [`Error::WrongKeyId`], a hint of a rotated key);
/// - the payload is for `license_key`;
/// - with a `fingerprint`, the file is a machine file for that machine (a license file,
///   which binds no machine, is [`Error::MachineFileRequired`]); without one, it is a
///   license file, or a machine file of an instance activated without a fingerprint;
/// - `now` is not more than [`CLOCK_TOLERANCE`] before `meta.issued`
///   ([`Error::ClockBehind`]), nor after the license key's own expiry
///   ([`Error::KeyExpired`]), nor after `meta.expiry` ([`Error::Expired`]); see
///   [`Payload::check_time`].
///
/// For an encrypted machine file, a wrong fingerprint cannot be told from a wrong key: both
/// are [`Error::DecryptionFailed`].
///
/// Pass `SystemTime::now()` as `now`, or use [`verify_license_file_now`].
///
/// A `license_key` that names another key as typed is tried once more as the customer
/// most likely meant it (see [`meant_key`]): in small letters, say.
pub fn verify_license_file(
    text: &str,
    key: &PublicKey,
    license_key: &str,
    fingerprint: Option<&str>,
    now: SystemTime,
) -> Result<Contents, Error> {
    let as_typed = verify_for_key(text, key, license_key, fingerprint, now);
    match (&as_typed, meant_key(license_key)) {
        (Err(Error::DecryptionFailed | Error::LicenseKeyMismatch), Some(meant)) => {
            verify_for_key(text, key, &meant, fingerprint, now)
        }
        _ => as_typed,
    }
}

fn verify_for_key(
    text: &str,
    key: &PublicKey,
    license_key: &str,
    fingerprint: Option<&str>,
    now: SystemTime,
) -> Result<Contents, Error> {
    let file = LicenseFile::parse(text)?;
    if let Err(refused) = file.verify(key) {
        // Which key the file names is read unverified, only to tell the app why.
        if let Ok(contents) = file.decrypt(license_key, fingerprint) {
            key.check_key_id(&contents.payload.meta.key_id)?;
        }
        return Err(refused);
    }
    // Before decrypting: an encrypted license file would otherwise be DecryptionFailed.
    if file.kind() == FileKind::License && fingerprint.is_some() {
        return Err(Error::MachineFileRequired);
    }
    let contents = file.decrypt(license_key, fingerprint)?;
    let payload = &contents.payload;
    key.check_key_id(&payload.meta.key_id)?;
    if payload.data.attributes.key != license_key {
        return Err(Error::LicenseKeyMismatch);
    }
    payload.check_machine(file.kind(), fingerprint)?;
    payload.check_time(now)?;
    Ok(contents)
}

/// The license key a customer most likely meant by `typed`, if that differs from what
/// they typed: the key without the whitespace around it (a key never begins or ends with
/// any), and, if it has the shape of the keys a server generates (five groups of five
/// Crockford base32 characters joined by `-`), in capitals, with `I` and `L` read as `1`
/// and `O` as `0`, as Crockford's decoding reads them. The server reads a typed key so
/// when it names no key as typed; so does [`verify_license_file`].
///
/// ```
/// use licensed_verify::meant_key;
///
/// assert_eq!(meant_key("17yn0-393jn-abcde-fghjk-mnpqr\n").as_deref(), Some("17YN0-393JN-ABCDE-FGHJK-MNPQR"));
/// assert_eq!(meant_key("abcde-fghij-klmno-pqrst-vwxyz").as_deref(), Some("ABCDE-FGH1J-K1MN0-PQRST-VWXYZ"));
/// assert_eq!(meant_key(" imported-key ").as_deref(), Some("imported-key"));
/// assert_eq!(meant_key("17YN0-393JN-ABCDE-FGHJK-MNPQR"), None);
/// ```
pub fn meant_key(typed: &str) -> Option<String> {
    let trimmed = typed.trim();
    let read: String = (trimmed.chars())
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect();
    let generated = read.split('-').count() == 5
        && read.split('-').all(|group| {
            group.len() == 5
                && (group.bytes())
                    .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && b != b'U'))
        });
    let meant = if generated { read } else { trimmed.to_owned() };
    (meant != typed).then_some(meant)
}

/// [`verify_license_file`] at the system clock's current time.
pub fn verify_license_file_now(
    text: &str,
    key: &PublicKey,
    license_key: &str,
    fingerprint: Option<&str>,
) -> Result<Contents, Error> {
    verify_license_file(text, key, license_key, fingerprint, SystemTime::now())
}
