//! Signed answers: the six lines of SPEC §6 and the `Licensed-Signature` header.

mod common;

use common::{Issuer, ResponseLines};
use licensed_verify::{Error, verify_response};

fn answer() -> ResponseLines {
    ResponseLines {
        method: "POST".into(),
        path: "/licenses/validate".into(),
        nonce: "n-4c1d2a7f9e".into(),
        date: "Tue, 04 Mar 2025 14:25:10 GMT".into(),
        request_body: br#"{"license_key":"LK-8F2A-91C3-D4E7"}"#.to_vec(),
        response_body: br#"{"valid":true}"#.to_vec(),
    }
}

fn check(issuer: &Issuer, lines: &ResponseLines, header: &str) -> Result<String, Error> {
    verify_response(
        &issuer.public_key(),
        &lines.method,
        &lines.path,
        &lines.nonce,
        &lines.date,
        &lines.request_body,
        &lines.response_body,
        header,
    )
}

#[test]
fn a_signed_answer_verifies_and_names_its_key() {
    let issuer = Issuer::new();
    let lines = answer();
    let header = issuer.sign_response(&lines);
    assert_eq!(check(&issuer, &lines, &header).unwrap(), issuer.key_id);

    // The server signs the path without its query string.
    let with_query = ResponseLines {
        path: "/licenses/validate?x=1".into(),
        ..lines.clone()
    };
    assert!(check(&issuer, &with_query, &header).is_ok());

    // Parameters in another order, with other spacing, and ones this version ignores.
    let signature = header.split("signature=").nth(1).unwrap();
    let reordered =
        format!(r#"signature={signature},algorithm="ed25519" ,  keyid="sk_test_1", created="1""#);
    assert!(check(&issuer, &lines, &reordered).is_ok());

    let bound = issuer.public_key().with_key_id("sk_test_1");
    let args = |key, header: &str| {
        verify_response(
            key,
            "POST",
            "/licenses/validate",
            &lines.nonce,
            &lines.date,
            &lines.request_body,
            &lines.response_body,
            header,
        )
    };
    assert!(args(&bound, &header).is_ok());
    let rotated = issuer.public_key().with_key_id("sk_test_2");
    assert!(matches!(
        args(&rotated, &header),
        Err(Error::WrongKeyId { .. })
    ));

    // An answer signed by another key that names it: WrongKeyId, the (unverified) hint
    // of a key rotated in since.
    let newer = Issuer {
        key_id: "sk_test_2".into(),
        ..Issuer::new()
    };
    let checked = args(&bound, &newer.sign_response(&lines));
    assert!(
        matches!(checked, Err(Error::WrongKeyId { ref found, .. }) if found == "sk_test_2"),
        "{checked:?}"
    );
}

#[test]
fn a_change_to_any_signed_line_or_the_signature_is_refused() {
    let issuer = Issuer::new();
    let lines = answer();
    let header = issuer.sign_response(&lines);
    let changes: Vec<(&str, ResponseLines)> = vec![
        (
            "method",
            ResponseLines {
                method: "GET".into(),
                ..lines.clone()
            },
        ),
        (
            "path",
            ResponseLines {
                path: "/licenses/activate".into(),
                ..lines.clone()
            },
        ),
        (
            "nonce",
            ResponseLines {
                nonce: "n-4c1d2a7f9f".into(),
                ..lines.clone()
            },
        ),
        (
            "date",
            ResponseLines {
                date: "Tue, 04 Mar 2025 14:25:11 GMT".into(),
                ..lines.clone()
            },
        ),
        (
            "request body",
            ResponseLines {
                request_body: b"{}".to_vec(),
                ..lines.clone()
            },
        ),
        (
            "response body",
            ResponseLines {
                response_body: br#"{"valid":false}"#.to_vec(),
                ..lines.clone()
            },
        ),
    ];
    for (what, changed) in changes {
        assert!(
            matches!(check(&issuer, &changed, &header), Err(Error::BadSignature)),
            "a changed {what} went unnoticed"
        );
    }

    let stranger = Issuer::new();
    assert!(matches!(
        check(&stranger, &lines, &header),
        Err(Error::BadSignature)
    ));

    let signature = header
        .split("signature=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    for at in 0..signature.len() - 2 {
        let mut changed = signature.to_owned();
        let replacement = if &signature[at..at + 1] == "A" {
            "B"
        } else {
            "A"
        };
        changed.replace_range(at..at + 1, replacement);
        let header = header.replace(signature, &changed);
        assert!(
            check(&issuer, &lines, &header).is_err(),
            "changing signature[{at}] went unnoticed"
        );
    }
}

#[test]
fn a_malformed_header_gets_its_own_error() {
    let issuer = Issuer::new();
    let lines = answer();
    let header = issuer.sign_response(&lines);
    for bad in [
        "",
        "garbage",
        r#"keyid="sk_test_1", algorithm="ed25519""#,
        r#"keyid=sk_test_1, algorithm="ed25519", signature="AAAA""#,
        r#"keyid="a", keyid="b", algorithm="ed25519", signature="AAAA""#,
        r#"keyid="sk_test_1", algorithm="ed25519", signature="%%%""#,
    ] {
        assert!(
            matches!(
                check(&issuer, &lines, bad),
                Err(Error::MalformedSignatureHeader(_))
            ),
            "{bad:?}"
        );
    }
    let rsa = header.replace("ed25519", "rsa-sha256");
    assert!(
        matches!(check(&issuer, &lines, &rsa), Err(Error::UnknownAlgorithm(alg)) if alg == "rsa-sha256")
    );
    let short = r#"keyid="sk_test_1", algorithm="ed25519", signature="AAAA""#;
    assert!(matches!(
        check(&issuer, &lines, short),
        Err(Error::BadSignature)
    ));
}
