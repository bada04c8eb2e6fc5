"""Checks licensed's license files and signed answers with Python's `cryptography`, an
implementation of Ed25519 and AES-256-GCM that is not ours, reading the format as SPEC §6
writes it: armor lines, base64 of {"enc", "sig", "alg"} wrapped at 76, `license/` or
`machine/` before `enc` in the signed text, AES-256-GCM under SHA-256 of the key (and
fingerprint).

Run by tests/compat.rs with LICENSED_URL and LICENSED_API_KEY.
"""

import base64
import datetime as dt
import hashlib
import json
import os
import secrets

import httpx
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

URL = os.environ["LICENSED_URL"]
API = httpx.Client(
    base_url=URL, headers={"Authorization": f"Bearer {os.environ['LICENSED_API_KEY']}"}
)
PUBLIC = httpx.Client(base_url=URL)


def b64(text):
    return base64.b64decode(text, validate=True)


def read_file(text, public_key, license_key, fingerprint=None):
    """The payload of a license or machine file, or an exception saying why not."""
    assert text.endswith("\n") and "\r" not in text, repr(text[-3:])
    begin, *body, end, last = text.split("\n")
    assert last == ""
    kind = {
        "-----BEGIN LICENSE FILE-----": "license",
        "-----BEGIN MACHINE FILE-----": "machine",
    }[begin]
    assert end == f"-----END {kind.upper()} FILE-----", end
    assert all(len(line) == 76 for line in body[:-1]) and 0 < len(body[-1]) <= 76
    certificate = json.loads(b64("".join(body)))
    assert set(certificate) == {"enc", "sig", "alg"}, certificate
    enc, sig, alg = certificate["enc"], certificate["sig"], certificate["alg"]
    public_key.verify(b64(sig), f"{kind}/{enc}".encode())
    if alg == "base64+ed25519":
        plaintext = b64(enc)
    elif alg == "aes-256-gcm+ed25519":
        secret = license_key + (fingerprint if kind == "machine" else "")
        ciphertext, iv, tag = (b64(part) for part in enc.split("."))
        assert len(iv) == 12 and len(tag) == 16
        key = hashlib.sha256(secret.encode()).digest()
        plaintext = AESGCM(key).decrypt(iv, ciphertext + tag, None)
    else:
        raise AssertionError(f"unknown alg {alg}")
    return kind, alg, json.loads(plaintext)


def refused(call, *errors):
    try:
        call()
    except errors:
        return
    raise AssertionError(f"expected one of {errors}")


def main():
    listed = API.get("/signing_keys").raise_for_status().json()["items"]
    active = next(k for k in listed if k["active"])
    public_key = serialization.load_pem_public_key(active["public_key_pem"].encode())
    assert isinstance(public_key, Ed25519PublicKey)
    assert public_key.public_bytes_raw().hex() == active["public_key_hex"]
    other_key = Ed25519PublicKey.from_public_bytes(secrets.token_bytes(32))

    customer = API.post("/customers", json={"email": "ada@example.com", "name": "Ada"})
    product = API.post("/products", json={"name": "Editor", "metadata": {"tier": "pro"}})
    key = API.post(
        "/license_keys",
        json={
            "customer_id": customer.raise_for_status().json()["customer_id"],
            "product_id": product.raise_for_status().json()["product_id"],
            "activations_limit": 2,
        },
    ).raise_for_status().json()
    license_key = key["key"]
    instance = PUBLIC.post(
        "/licenses/activate",
        json={"license_key": license_key, "name": "laptop", "fingerprint": "fp-A"},
    ).raise_for_status().json()

    # A license file, plain and encrypted, over the API.
    for encrypt, expected_alg in [(False, "base64+ed25519"), (True, "aes-256-gcm+ed25519")]:
        reply = API.post(
            f"/license_keys/{key['id']}/license_file",
            json={"encrypt": encrypt, "ttl": 86400},
        ).raise_for_status()
        assert reply.headers["content-type"] == "application/x-pem-file"
        kind, alg, payload = read_file(reply.text, public_key, license_key)
        assert (kind, alg) == ("license", expected_alg)
        meta, data = payload["meta"], payload["data"]
        issued = dt.datetime.fromisoformat(meta["issued"].replace("Z", "+00:00"))
        expiry = dt.datetime.fromisoformat(meta["expiry"].replace("Z", "+00:00"))
        assert (expiry - issued).total_seconds() == 86400 == meta["ttl"]
        assert meta["key_id"] == active["key_id"]
        assert data["type"] == "licenses" and data["id"] == key["id"]
        attributes = data["attributes"]
        assert attributes["key"] == license_key
        assert attributes["status"] == "active"
        assert attributes["maxMachines"] == 2
        assert attributes["customer"]["email"] == "ada@example.com"
        assert attributes["metadata"] == {"tier": "pro"}
        assert payload["included"] == []
        refused(lambda: read_file(reply.text, other_key, license_key), InvalidSignature)
        if encrypt:
            refused(lambda: read_file(reply.text, public_key, "OTHER-KEY"), InvalidTag)

    # A machine file, encrypted for the machine, asked for by the app itself.
    reply = PUBLIC.post(
        "/licenses/license_file",
        json={
            "license_key": license_key,
            "license_key_instance_id": instance["id"],
            "encrypt": True,
        },
    ).raise_for_status()
    kind, alg, payload = read_file(reply.text, public_key, license_key, "fp-A")
    assert (kind, alg) == ("machine", "aes-256-gcm+ed25519")
    assert payload["included"] == [
        {
            "type": "machines",
            "id": instance["id"],
            "attributes": {"name": "laptop", "fingerprint": "fp-A"},
        }
    ]
    refused(lambda: read_file(reply.text, public_key, license_key, "fp-B"), InvalidTag)
    # A machine file's signature does not pass for a license file's.
    relabelled = reply.text.replace("MACHINE FILE", "LICENSE FILE")
    refused(lambda: read_file(relabelled, public_key, license_key), InvalidSignature)

    # A signed answer: the six lines, checked here from their definition.
    body = json.dumps({"license_key": license_key}).encode()
    nonce = secrets.token_urlsafe(24)
    reply = PUBLIC.post(
        "/licenses/validate",
        content=body,
        headers={"content-type": "application/json", "Licensed-Nonce": nonce},
    ).raise_for_status()
    assert reply.json() == {"valid": True}
    fields = dict(
        part.strip().split("=", 1) for part in reply.headers["licensed-signature"].split(",")
    )
    fields = {name: value.strip('"') for name, value in fields.items()}
    assert fields["keyid"] == active["key_id"] and fields["algorithm"] == "ed25519"

    def digest(data):
        return base64.b64encode(hashlib.sha256(data).digest()).decode()

    def message(nonce, response):
        return "\n".join(
            [
                "licensed-response-v1",
                "POST /licenses/validate",
                nonce,
                reply.headers["date"],
                digest(body),
                digest(response),
            ]
        ).encode()

    signature = b64(fields["signature"])
    public_key.verify(signature, message(nonce, reply.content))
    refused(lambda: public_key.verify(signature, message(nonce + "x", reply.content)), InvalidSignature)
    forged = reply.content.replace(b"true", b"fals")
    refused(lambda: public_key.verify(signature, message(nonce, forged)), InvalidSignature)
    print("license files and signed answers verified with cryptography")


if __name__ == "__main__":
    main()
