//! Signed answers of `/licenses/*`: the `Licensed-Signature` header over six lines (SPEC §6).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::{Error, PublicKey};

/// Checks the `Licensed-Signature` header of an answer to a request that sent
/// `Licensed-Nonce: <nonce>`, and returns the key id it names. The id is not among the
/// signed lines: it is checked only against a key bound with
/// [`PublicKey::with_key_id`]. Comparing `date` with the app's clock is the app's to do.
///
/// The signed text is, joined by `\n`: `licensed-response-v1`, `<METHOD> <path>`, the
/// nonce, the `Date` header's value, and the base64 SHA-256 of the request body and of
/// the response body. `path` is the request's path; a query string, if passed, is
/// dropped, as the server signs the path without it. Check the returned answer only
/// after this succeeds, and only if `nonce` is the one this request sent. The status
/// line is not signed: judge the answer by its body (an error's `code`, `{"valid": …}`,
/// deactivation's empty body), not by its status.
///
/// ```
/// # fn check(key: &licensed_verify::PublicKey, nonce: &str, date: &str,
/// #          request: &[u8], response: &[u8], header: &str) -> Result<(), licensed_verify::Error> {
/// licensed_verify::verify_response(
///     key, "POST", "/licenses/validate", nonce, date, request, response, header,
/// )?;
/// # Ok(()) }
/// ```
// One argument per signed line keeps the call a plain reading of SPEC §6.
#[allow(clippy::too_many_arguments)]
pub fn verify_response(
    key: &PublicKey,
    method: &str,
    path: &str,
    nonce: &str,
    date_header: &str,
    request_body: &[u8],
    response_body: &[u8],
    signature_header: &str,
) -> Result<String, Error> {
    let header = SignatureHeader::parse(signature_header)?;
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let message = [
        "licensed-response-v1",
        &format!("{method} {path}"),
        nonce,
        date_header,
        &STANDARD.encode(Sha256::digest(request_body)),
        &STANDARD.encode(Sha256::digest(response_body)),
    ]
    .join("\n");
    // Before the signature: an answer signed by another key names it.
    key.check_key_id(&header.key_id)?;
    key.verify(message.as_bytes(), &header.signature)?;
    Ok(header.key_id)
}

/// `keyid="…", algorithm="ed25519", signature="<base64>"`, in any order.
struct SignatureHeader {
    key_id: String,
    signature: Vec<u8>,
}

impl SignatureHeader {
    fn parse(header: &str) -> Result<Self, Error> {
        let (mut key_id, mut algorithm, mut signature) = (None, None, None);
        for param in header.split(',') {
            let (name, value) = param
                .split_once('=')
                .ok_or(Error::MalformedSignatureHeader(
                    "expected name=\"value\" pairs",
                ))?;
            let value = value
                .trim()
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
                .ok_or(Error::MalformedSignatureHeader("values must be quoted"))?;
            let slot = match name.trim() {
                "keyid" => &mut key_id,
                "algorithm" => &mut algorithm,
                "signature" => &mut signature,
                // Parameters a later server may add are not this version's concern.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(Error::MalformedSignatureHeader("repeated parameter"));
            }
        }
        let (Some(key_id), Some(algorithm), Some(signature)) = (key_id, algorithm, signature)
        else {
            return Err(Error::MalformedSignatureHeader(
                "expected keyid, algorithm and signature",
            ));
        };
        if algorithm != "ed25519" {
            return Err(Error::UnknownAlgorithm(algorithm.to_owned()));
        }
        let signature = STANDARD
            .decode(signature)
            .map_err(|_| Error::MalformedSignatureHeader("signature is not base64"))?;
        Ok(Self {
            key_id: key_id.to_owned(),
            signature,
        })
    }
}
