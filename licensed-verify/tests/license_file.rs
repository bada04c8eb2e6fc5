//! License and machine files: round trips, and every way a file must be refused.

mod common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration as Span, Utc};
use common::{FINGERPRINT, Issuer, LICENSE_KEY, armor, envelope};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use licensed_verify::{
    Algorithm, Error, ErrorKind, FileKind, LicenseFile, PublicKey, verify_license_file,
    verify_license_file_now,
};
use serde_json::json;

fn check(issuer: &Issuer, file: &str, fingerprint: Option<&str>) -> Result<(), Error> {
    verify_license_file_now(file, &issuer.public_key(), LICENSE_KEY, fingerprint).map(|_| ())
}

#[test]
fn round_trips_license_and_machine_files_plain_and_encrypted() {
    let issuer = Issuer::new();
    for machine in [false, true] {
        for encrypt in [false, true] {
            let text = issuer.issue(machine, encrypt);
            let fingerprint = machine.then_some(FINGERPRINT);
            let contents =
                verify_license_file_now(&text, &issuer.public_key(), LICENSE_KEY, fingerprint)
                    .unwrap_or_else(|e| panic!("machine={machine} encrypt={encrypt}: {e}"));
            let payload = &contents.payload;
            assert_eq!(payload.meta.key_id, issuer.key_id);
            assert_eq!(payload.meta.ttl, 2_629_746);
            assert_eq!(
                payload.meta.expiry - payload.meta.issued,
                Span::seconds(2_629_746)
            );
            assert_eq!(payload.data.id, "lic_4Hk9");
            assert_eq!(payload.data.attributes.key, LICENSE_KEY);
            assert_eq!(payload.data.attributes.max_machines, Some(3));
            assert_eq!(payload.data.attributes.metadata, json!({"plan": "pro"}));
            let machine_fingerprint = payload
                .machine()
                .and_then(|m| m.attributes.fingerprint.as_deref());
            assert_eq!(machine_fingerprint, fingerprint);
            let raw: serde_json::Value = serde_json::from_str(&contents.json).unwrap();
            assert_eq!(
                raw["data"]["attributes"]["customer"]["customer_id"],
                "cus_1"
            );

            let file = LicenseFile::parse(&text).unwrap();
            let kind = if machine {
                FileKind::Machine
            } else {
                FileKind::License
            };
            assert_eq!(file.kind(), kind);
            assert_eq!(file.is_encrypted(), encrypt);
            let alg = envelope(&text)["alg"].as_str().unwrap().to_owned();
            assert_eq!(file.algorithm().as_str(), alg);
        }
    }
}

#[test]
fn public_keys_parse_from_hex_and_pem() {
    let issuer = Issuer::new();
    let pem = issuer
        .signing_key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let from_pem = PublicKey::from_pem(&pem).unwrap();
    let from_hex = PublicKey::from_hex(&issuer.public_key_hex()).unwrap();
    assert_eq!(from_pem, from_hex);
    assert_eq!(PublicKey::parse(&pem).unwrap(), from_pem);
    // What `licensed signing-key show` prints: the id and the hex, then the PEM.
    let shown = format!("sk_0123\n{}\n{pem}", issuer.public_key_hex());
    assert_eq!(PublicKey::parse(&shown).unwrap(), from_pem);
    // As pasted: indented in a string literal, wrapped at another width or not at all,
    // with CRLF line ends, followed by other text.
    let lines: Vec<&str> = pem.lines().collect();
    let (begin, body, end) = (
        lines[0],
        lines[1..lines.len() - 1].concat(),
        lines[lines.len() - 1],
    );
    let (head, tail) = body.split_at(20);
    for pasted in [
        pem.lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>(),
        format!("{begin}\n{head}\n{tail}\n{end}\n"),
        format!("{begin}\n{body}\n{end}"),
        pem.replace('\n', "\r\n"),
        format!("{pem}and the rest of the message\n"),
    ] {
        assert_eq!(PublicKey::parse(&pasted).unwrap(), from_pem, "{pasted}");
    }
    let refused = |text: &str| match PublicKey::parse(text) {
        Err(Error::InvalidPublicKey(why)) => why,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(
        refused(&format!("{begin}\n{body}\n")),
        "no -----END PUBLIC KEY----- line"
    );
    assert_eq!(
        refused(&format!("{begin}\n{body}!\n{end}")),
        "the PEM's lines are not base64"
    );
    let short = &body[..body.len() - 4];
    assert_eq!(
        refused(&format!("{begin}\n{short}\n{end}")),
        "the PEM holds no Ed25519 public key"
    );
    assert_eq!(
        PublicKey::parse(&format!(" {}\n", issuer.public_key_hex())).unwrap(),
        from_hex
    );
    assert_eq!(
        PublicKey::parse(&issuer.public_key_hex().to_uppercase()).unwrap(),
        from_hex
    );

    for bad in [
        "",
        "abc",
        &"zz".repeat(32),
        &"0".repeat(66),
        "+f".repeat(32).as_str(),
    ] {
        assert!(
            matches!(PublicKey::parse(bad), Err(Error::InvalidPublicKey(_))),
            "{bad:?}"
        );
    }
    let not_a_key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        PublicKey::parse(not_a_key),
        Err(Error::InvalidPublicKey(_))
    ));
}

#[test]
fn a_byte_order_mark_before_the_armor_is_ignored() {
    let issuer = Issuer::new();
    let text = format!("\u{feff}{}", issuer.issue(false, false));
    assert!(check(&issuer, &text, None).is_ok());
}

#[test]
fn any_whitespace_inside_the_armor_is_accepted() {
    let issuer = Issuer::new();
    let text = issuer.issue(true, true);
    let unwrapped: String = text
        .lines()
        .map(|line| {
            if line.starts_with("-----") {
                format!("\n{line}\n")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let crlf = text.replace('\n', "\r\n");
    let spaced = format!("  \n{}\t\n", text.replace('\n', " \n\t"));
    for variant in [unwrapped, crlf, spaced] {
        check(&issuer, &variant, Some(FINGERPRINT)).unwrap_or_else(|e| panic!("{variant:?}: {e}"));
    }
}

#[test]
fn every_changed_character_of_the_body_is_refused() {
    let issuer = Issuer::new();
    for encrypt in [false, true] {
        let text = issuer.issue(true, encrypt);
        let begin = text.find('\n').unwrap() + 1;
        let end = text.rfind("-----END").unwrap();
        for at in begin..end {
            let original = text.as_bytes()[at];
            if original == b'\n' {
                continue;
            }
            let replacement = if original == b'A' { "B" } else { "A" };
            let mut changed = text.clone();
            changed.replace_range(at..at + 1, replacement);
            assert!(
                check(&issuer, &changed, Some(FINGERPRINT)).is_err(),
                "changing byte {at} went unnoticed"
            );
        }
    }
}

#[test]
fn every_changed_character_of_enc_or_byte_of_sig_breaks_the_signature() {
    let issuer = Issuer::new();
    for machine in [false, true] {
        for encrypt in [false, true] {
            let text = issuer.issue(machine, encrypt);
            let original = envelope(&text);
            let enc = original["enc"].as_str().unwrap();
            for at in 0..enc.len() {
                let replacement = if &enc[at..at + 1] == "A" { "B" } else { "A" };
                let mut changed = original.clone();
                let mut changed_enc = enc.to_owned();
                changed_enc.replace_range(at..at + 1, replacement);
                changed["enc"] = json!(changed_enc);
                let file = armor(machine, &serde_json::to_vec(&changed).unwrap());
                let parsed = LicenseFile::parse(&file).unwrap();
                assert!(matches!(
                    parsed.verify(&issuer.public_key()),
                    Err(Error::BadSignature)
                ));
            }
            let sig = STANDARD.decode(original["sig"].as_str().unwrap()).unwrap();
            for at in 0..sig.len() {
                let mut changed_sig = sig.clone();
                changed_sig[at] ^= 0x01;
                let mut changed = original.clone();
                changed["sig"] = json!(STANDARD.encode(&changed_sig));
                let file = armor(machine, &serde_json::to_vec(&changed).unwrap());
                assert!(matches!(
                    check(&issuer, &file, Some(FINGERPRINT)),
                    Err(Error::BadSignature)
                ));
            }
        }
    }
}

#[test]
fn a_relabelled_file_or_a_changed_alg_is_refused() {
    let issuer = Issuer::new();
    let text = issuer.issue(false, false);
    let as_machine = text.replace("LICENSE FILE", "MACHINE FILE");
    assert!(matches!(
        check(&issuer, &as_machine, Some(FINGERPRINT)),
        Err(Error::BadSignature)
    ));

    for (encrypt, other_alg) in [(false, "aes-256-gcm+ed25519"), (true, "base64+ed25519")] {
        let mut changed = envelope(&issuer.issue(false, encrypt));
        changed["alg"] = json!(other_alg);
        let file = armor(false, &serde_json::to_vec(&changed).unwrap());
        assert!(matches!(
            check(&issuer, &file, None),
            Err(Error::MalformedEnc(_))
        ));
    }

    let mut unknown = envelope(&text);
    unknown["alg"] = json!("rsa-sha256");
    let file = armor(false, &serde_json::to_vec(&unknown).unwrap());
    assert!(
        matches!(LicenseFile::parse(&file), Err(Error::UnknownAlgorithm(alg)) if alg == "rsa-sha256")
    );
}

#[test]
fn malformed_files_get_their_own_errors() {
    let issuer = Issuer::new();
    let text = issuer.issue(false, false);
    let mismatched_end = text.replace("-----END LICENSE FILE-----", "-----END MACHINE FILE-----");
    for bad in [
        "",
        "hello",
        text.trim_end()
            .trim_end_matches("-----END LICENSE FILE-----"),
        &mismatched_end,
    ] {
        assert!(
            matches!(LicenseFile::parse(bad), Err(Error::MalformedArmor)),
            "{bad:?}"
        );
    }
    let not_base64 = "-----BEGIN LICENSE FILE-----\n!!!!\n-----END LICENSE FILE-----";
    assert!(matches!(
        LicenseFile::parse(not_base64),
        Err(Error::MalformedBase64 { field: "body" })
    ));
    let not_json = armor(false, b"not json");
    assert!(matches!(
        LicenseFile::parse(&not_json),
        Err(Error::MalformedEnvelope(_))
    ));
    let bad_sig = armor(
        false,
        br#"{"enc": "e30=", "sig": "%%", "alg": "base64+ed25519"}"#,
    );
    assert!(matches!(
        LicenseFile::parse(&bad_sig),
        Err(Error::MalformedBase64 { field: "sig" })
    ));

    // A payload that is not SPEC's, even when properly signed.
    let unsigned_shape = issuer.file(&json!({"meta": {}}), false, None);
    assert!(matches!(
        check(&issuer, &unsigned_shape, None),
        Err(Error::MalformedPayload(_))
    ));
}

#[test]
fn another_public_key_or_key_id_is_refused() {
    let issuer = Issuer::new();
    let text = issuer.issue(false, true);
    let stranger = Issuer::new();
    assert!(matches!(
        check(&stranger, &text, None),
        Err(Error::BadSignature)
    ));

    let bound = issuer.public_key().with_key_id(issuer.key_id.clone());
    assert!(verify_license_file_now(&text, &bound, LICENSE_KEY, None).is_ok());
    let rotated = issuer.public_key().with_key_id("sk_test_2");
    assert!(matches!(
        verify_license_file_now(&text, &rotated, LICENSE_KEY, None),
        Err(Error::WrongKeyId { expected, found }) if expected == "sk_test_2" && found == issuer.key_id
    ));

    // A file signed by another key that names it, plain or encrypted: WrongKeyId, the
    // (unverified) hint of a key rotated in since.
    let newer = Issuer {
        key_id: "sk_test_2".into(),
        ..Issuer::new()
    };
    for encrypted in [false, true] {
        let text = newer.issue(false, encrypted);
        assert!(matches!(
            verify_license_file_now(&text, &bound, LICENSE_KEY, None),
            Err(Error::WrongKeyId { expected, found }) if expected == issuer.key_id && found == "sk_test_2"
        ));
        // Without a bound key id, all it can say is that the signature fails.
        assert!(matches!(
            check(&issuer, &text, None),
            Err(Error::BadSignature)
        ));
    }
}

#[test]
fn an_encrypted_file_opens_only_with_its_license_key() {
    let issuer = Issuer::new();
    let text = issuer.issue(false, true);
    let key = issuer.public_key();
    assert!(matches!(
        verify_license_file_now(&text, &key, "LK-0000-0000-0000", None),
        Err(Error::DecryptionFailed)
    ));
    // A plain file is readable by anyone, but is still for one license key.
    let plain = issuer.issue(false, false);
    assert!(matches!(
        verify_license_file_now(&plain, &key, "LK-0000-0000-0000", None),
        Err(Error::LicenseKeyMismatch)
    ));
}

#[test]
fn a_machine_file_is_only_for_its_machine() {
    let issuer = Issuer::new();
    let encrypted = issuer.issue(true, true);
    assert!(check(&issuer, &encrypted, Some(FINGERPRINT)).is_ok());
    assert!(matches!(
        check(&issuer, &encrypted, Some("fp-other")),
        Err(Error::DecryptionFailed)
    ));
    assert!(matches!(
        check(&issuer, &encrypted, None),
        Err(Error::FingerprintRequired)
    ));
    let file = LicenseFile::parse(&encrypted).unwrap();
    assert!(matches!(
        file.decrypt(LICENSE_KEY, None),
        Err(Error::FingerprintRequired)
    ));
    // SHA-256(license key) alone, as for a license file, does not open it.
    assert!(matches!(
        file.decrypt(LICENSE_KEY, Some("")),
        Err(Error::DecryptionFailed)
    ));

    let plain = issuer.issue(true, false);
    assert!(matches!(
        check(&issuer, &plain, Some("fp-other")),
        Err(Error::FingerprintMismatch)
    ));
    assert!(matches!(
        check(&issuer, &plain, None),
        Err(Error::FingerprintRequired)
    ));

    // An app that names its machine needs a machine file: a license file binds none.
    for encrypted in [false, true] {
        let license_file = issuer.issue(false, encrypted);
        assert!(matches!(
            check(&issuer, &license_file, Some(FINGERPRINT)),
            Err(Error::MachineFileRequired)
        ));
    }

    // An instance activated without a fingerprint gets a plain machine file bound to
    // none: it verifies without one, and not for a machine that names one.
    let mut payload = issuer.payload(Utc::now(), 3600, None);
    payload["included"] = json!([{"type": "machines", "id": "lki_9", "attributes": {
        "name": "no-fingerprint", "fingerprint": null}}]);
    let unbound = issuer.file(&payload, true, None);
    assert!(check(&issuer, &unbound, None).is_ok());
    assert!(matches!(
        check(&issuer, &unbound, Some(FINGERPRINT)),
        Err(Error::FingerprintMismatch)
    ));
}

#[test]
fn expiry_and_a_clock_set_back_are_refused() {
    let issuer = Issuer::new();
    let issued = Utc::now() - Span::days(40);
    let ttl = 30 * 24 * 3600;
    let text = issuer.file(&issuer.payload(issued, ttl, None), false, None);
    let key = issuer.public_key();
    let at = |t: chrono::DateTime<Utc>| SystemTime::from(t);

    let expired = verify_license_file(&text, &key, LICENSE_KEY, None, SystemTime::now());
    assert!(
        matches!(expired, Err(Error::Expired { expiry }) if expiry == issued + Span::seconds(ttl))
    );
    // The last instant of its life still counts; the clock may lag issued by 5 minutes.
    let last = at(issued + Span::seconds(ttl));
    assert!(verify_license_file(&text, &key, LICENSE_KEY, None, last).is_ok());
    let lagging = at(issued - Span::minutes(5));
    assert!(verify_license_file(&text, &key, LICENSE_KEY, None, lagging).is_ok());
    let set_back = at(issued - Span::minutes(5)) - Duration::from_secs(1);
    assert!(matches!(
        verify_license_file(&text, &key, LICENSE_KEY, None, set_back),
        Err(Error::ClockBehind { issued: at_issue }) if at_issue == issued
    ));

    // The key's own expiry ends the file early.
    let mut payload = issuer.payload(Utc::now() - Span::days(2), ttl, None);
    let key_expiry = Utc::now() - Span::days(1);
    payload["data"]["attributes"]["expiry"] = json!(key_expiry.to_rfc3339());
    let text = issuer.file(&payload, false, None);
    assert!(matches!(
        verify_license_file_now(&text, &key, LICENSE_KEY, None),
        Err(Error::KeyExpired { expiry }) if expiry == key_expiry
    ));
    // Once both have passed, the key's expiry is told: a fresh file would not help.
    let past_both = at(Utc::now() + Span::seconds(ttl));
    assert!(matches!(
        verify_license_file(&text, &key, LICENSE_KEY, None, past_both),
        Err(Error::KeyExpired { expiry }) if expiry == key_expiry
    ));
}

#[test]
fn decrypt_returns_the_payload_of_a_plain_file_without_keys() {
    let issuer = Issuer::new();
    let file = LicenseFile::parse(&issuer.issue(true, false)).unwrap();
    file.verify(&issuer.public_key()).unwrap();
    let contents = file.decrypt("", None).unwrap();
    assert_eq!(file.algorithm(), Algorithm::Base64Ed25519);
    assert_eq!(contents.payload.included.len(), 1);
}

#[test]
fn check_time_alone_checks_a_payload_read_without_its_license_key() {
    let issuer = Issuer::new();
    let issued = Utc::now() - Span::days(2);
    let text = issuer.file(&issuer.payload(issued, 3600, None), false, None);
    let file = LicenseFile::parse(&text).unwrap();
    file.verify(&issuer.public_key()).unwrap();
    let payload = file.decrypt("", None).unwrap().payload;
    let at = |t: chrono::DateTime<Utc>| SystemTime::from(t);

    assert!(payload.check_time(at(issued + Span::minutes(30))).is_ok());
    assert!(matches!(
        payload.check_time(SystemTime::now()),
        Err(Error::Expired { expiry }) if expiry == issued + Span::hours(1)
    ));
    assert!(matches!(
        payload.check_time(at(issued - Span::minutes(6))),
        Err(Error::ClockBehind { .. })
    ));
}

/// An app decides by the kind of a refusal: refuse, fetch a fresh file, or have the
/// customer renew.
#[test]
fn each_refusal_says_what_the_app_does_about_it() {
    let issuer = Issuer::new();
    let key = issuer.public_key();
    let kind_of = |text: &str, license_key: &str, fingerprint: Option<&str>| {
        let refused = verify_license_file_now(text, &key, license_key, fingerprint);
        refused.map(|_| ()).unwrap_err().kind()
    };

    let file = issuer.issue(false, false);
    let tampered = file.replacen("-----\n", "-----\nA", 1);
    assert_eq!(kind_of(&tampered, LICENSE_KEY, None), ErrorKind::Invalid);
    let other = Issuer::new().issue(false, false);
    assert_eq!(kind_of(&other, LICENSE_KEY, None), ErrorKind::Invalid);

    let machine_file = issuer.issue(true, true);
    let not_for_this = [
        kind_of(&file, "LK-0000-0000-0000", None),
        kind_of(&machine_file, LICENSE_KEY, Some("fp-other")),
        kind_of(&machine_file, LICENSE_KEY, None),
        kind_of(&file, LICENSE_KEY, Some(FINGERPRINT)),
    ];
    assert_eq!(not_for_this, [ErrorKind::NotForThis; 4]);

    let old = issuer.payload(Utc::now() - Span::days(2), 3600, None);
    let expired = issuer.file(&old, false, None);
    assert_eq!(kind_of(&expired, LICENSE_KEY, None), ErrorKind::FileExpired);
    let mut lapsed = issuer.payload(Utc::now() - Span::days(2), 30 * 24 * 3600, None);
    lapsed["data"]["attributes"]["expiry"] = json!((Utc::now() - Span::days(1)).to_rfc3339());
    let lapsed = issuer.file(&lapsed, false, None);
    assert_eq!(kind_of(&lapsed, LICENSE_KEY, None), ErrorKind::KeyExpired);
    let future = issuer.payload(Utc::now() + Span::days(1), 3600, None);
    let early = issuer.file(&future, false, None);
    assert_eq!(kind_of(&early, LICENSE_KEY, None), ErrorKind::ClockBehind);

    let bad_key = PublicKey::parse("not a key").unwrap_err();
    assert_eq!(bad_key.kind(), ErrorKind::BadPublicKey);
}
