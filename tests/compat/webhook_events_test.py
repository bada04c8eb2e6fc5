"""Receives the server's webhook deliveries of every event type on 127.0.0.1 and verifies
each with the official Dodo Payments Python client's `webhooks.unwrap`.

Dodo's client knows one of these types, `license_key.created`, and parses it into its
own model. For a type outside its union, `unwrap` still checks the signature and then
builds the union's first model loosely around the body: the event's fields are all
there, as attributes, but the class's name means nothing. The checks below read the
fields, never the class, for those types.

Run by tests/compat.rs with LICENSED_URL and LICENSED_API_KEY.
"""

import base64
import json
import os
import secrets
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from dodopayments import DodoPayments
from dodopayments.types import LicenseKey, LicenseKeyCreatedWebhookEvent
from standardwebhooks import WebhookVerificationError

URL = os.environ["LICENSED_URL"]
KEY = os.environ["LICENSED_API_KEY"]
# How long the deliveries may take to arrive.
PATIENCE = 20.0

# license_keys.update is marked deprecated in the client; it still works.
warnings.simplefilter("ignore", DeprecationWarning)


class Receiver:
    """An HTTP server on a free port of 127.0.0.1 that keeps every POST it is sent."""

    def __init__(self):
        self.deliveries = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.changed:
                    receiver.deliveries.append((self.path, body, dict(self.headers)))
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count):
        """The first `count` deliveries, once they have arrived."""
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.deliveries) >= count, timeout=PATIENCE)
            types = [json.loads(body)["type"] for _, body, _ in self.deliveries]
            assert arrived, f"{count} deliveries expected within {PATIENCE} s, got {types}"
            return list(self.deliveries[:count])


def expect(cls, call):
    try:
        call()
    except cls as error:
        return error
    raise AssertionError(f"expected {cls.__name__}")


def main():
    receiver = Receiver()
    api = DodoPayments(bearer_token=KEY, base_url=URL, max_retries=0)

    endpoint = api.webhooks.create(url=receiver.url, description="compat", headers={"X-Env": "compat"})
    secret = api.webhooks.retrieve_secret(endpoint.id).secret

    # Every instance of this product's keys must beat each second, or it dies.
    product = api.products.create(
        name="Editor Pro",
        price={"type": "one_time_price", "currency": "EUR", "price": 4900, "discount": 0,
               "purchasing_power_parity": False},
        tax_category="digital_products",
        license_key_enabled=True,
        extra_body={"heartbeat_interval": 1},
    )
    assert api.products.retrieve(product.product_id).heartbeat_interval == 1
    customer = api.customers.create(email="ada@example.com", name="Ada Lovelace")

    key = api.license_keys.create(customer_id=customer.customer_id, product_id=product.product_id,
                                  key="HOOKED-KEY-1")
    assert key.heartbeat_interval == 1, "a key takes its product's interval"
    # A long interval while an instance comes and goes, so that it cannot die first.
    api.license_keys.update(key.id, activations_limit=2, extra_body={"heartbeat_interval": 3600})
    laptop = api.licenses.activate(license_key=key.key, name="laptop")
    assert api.licenses.deactivate(license_key=key.key, license_key_instance_id=laptop.id) is None
    api.license_keys.update(key.id, extra_body={"heartbeat_interval": 1})
    # Never beats: the sweeper deletes it a second or two from now.
    desktop = api.licenses.activate(license_key=key.key, name="desktop")
    assert desktop.heartbeat_expires_at is not None

    # The ledger entry is written once the instance is gone, so that the order of all
    # deliveries is known: an endpoint's messages are sent in the order of their changes.
    receiver.wait_for(7)
    assert api.licenses.validate(license_key=key.key, license_key_instance_id=desktop.id).valid is False
    assert api.license_keys.retrieve(key.id).instances_count == 0
    ledger = httpx.post(f"{URL}/license_updates", headers={"Authorization": f"Bearer {KEY}"},
                        json={"accountId": "acme", "licenseId": "editor-seats",
                              "updateType": "ABSOLUTE", "quantity": 5})
    assert ledger.status_code == 200, ledger.text
    deliveries = receiver.wait_for(8)

    events = []
    for path, body, headers in deliveries:
        named = {name.lower(): value for name, value in headers.items()}
        assert path == "/hooks"
        assert named["content-type"] == "application/json"
        assert named["x-env"] == "compat", "the endpoint's own headers come with each delivery"
        assert named["webhook-id"].startswith("msg_")
        # The headers as received, the body as bytes, as a receiver has them.
        event = api.webhooks.unwrap(body, headers=headers, key=secret)
        assert event.business_id == key.business_id
        events.append(event)
    ids = {value for _, _, headers in deliveries for name, value in headers.items() if name.lower() == "webhook-id"}
    assert len(ids) == 8, "one message per event"
    assert [e.type for e in events] == [
        "license_key.created",
        "license_key.updated",
        "license_key_instance.created",
        "license_key_instance.deleted",
        "license_key.updated",
        "license_key_instance.created",
        "license_key_instance.deleted",
        "license_update.created",
    ]
    for event in events:
        print(f"unwrap: {event.type} -> {type(event).__name__} (data: {type(event.data).__name__})")

    created, limited, laptop_created, laptop_deleted, beating, desktop_created, desktop_deleted, entry = events
    # The one type Dodo's client knows is parsed into its model.
    assert isinstance(created, LicenseKeyCreatedWebhookEvent) and isinstance(created.data, LicenseKey)
    assert created.data.id == key.id and created.data.key == key.key
    assert created.data.customer_id == customer.customer_id and created.data.product_id == product.product_id
    assert created.data.status == "active" and created.data.instances_count == 0
    assert created.data.heartbeat_interval == 1 and created.data.payload_type == "LicenseKey"

    # Each update shows the key as that change left it.
    for event, limit, interval in [(limited, 2, 3600), (beating, 2, 1)]:
        assert event.data.payload_type == "LicenseKey" and event.data.id == key.id
        assert event.data.activations_limit == limit and event.data.heartbeat_interval == interval

    for event, instance in [(laptop_created, laptop), (laptop_deleted, laptop),
                            (desktop_created, desktop), (desktop_deleted, desktop)]:
        assert event.data.payload_type == "LicenseKeyInstance"
        assert event.data.id == instance.id and event.data.name == instance.name
        assert event.data.license_key_id == key.id
    assert not hasattr(laptop_created.data, "reason") and not hasattr(desktop_created.data, "reason")
    assert laptop_deleted.data.reason == "deactivated"
    assert desktop_deleted.data.reason == "heartbeat"

    assert entry.data.payload_type == "LicenseUpdate"
    assert entry.data.quantity == 5 and entry.data.accountId == "acme" and entry.data.licenseId == "editor-seats"
    # The entry as `POST /license_updates` answered it, to the byte of each value.
    delivered = json.loads(deliveries[-1][1])["data"]
    assert delivered.pop("payload_type") == "LicenseUpdate"
    assert delivered == ledger.json()

    # Forged deliveries are refused: one changed byte, or a secret that is not the endpoint's.
    _, body, headers = deliveries[-1]
    tampered = body.replace(b'"quantity":5', b'"quantity":9')
    assert len(tampered) == len(body) and tampered != body
    refused = expect(WebhookVerificationError, lambda: api.webhooks.unwrap(tampered, headers=headers, key=secret))
    assert str(refused) == "No matching signature found"
    stranger = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    refused = expect(WebhookVerificationError, lambda: api.webhooks.unwrap(body, headers=headers, key=stranger))
    assert str(refused) == "No matching signature found"
    unsigned = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    refused = expect(WebhookVerificationError, lambda: api.webhooks.unwrap(body, headers=unsigned, key=secret))
    assert str(refused) == "Missing required headers"
    # The client's own webhook key is used when none is passed.
    keyed = DodoPayments(bearer_token=KEY, base_url=URL, webhook_key=secret)
    assert keyed.webhooks.unwrap(body, headers=headers).type == "license_update.created"

    receiver.server.shutdown()
    print("webhook events: all checks passed")


if __name__ == "__main__":
    main()
