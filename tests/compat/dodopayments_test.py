"""Drives licensed with the official Dodo Payments Python client, asserting what it
returns and which exception classes it raises.

Run by tests/compat.rs with LICENSED_URL, LICENSED_API_KEY and LICENSED_READ_ONLY_KEY.
"""

import datetime as dt
import os
import warnings

import httpx
import dodopayments
from dodopayments import DodoPayments

URL = os.environ["LICENSED_URL"]
KEY = os.environ["LICENSED_API_KEY"]
READ_ONLY_KEY = os.environ["LICENSED_READ_ONLY_KEY"]
UTC = dt.timezone.utc

# license_keys.retrieve/update/list are marked deprecated in the client; they still work.
warnings.simplefilter("ignore", DeprecationWarning)


def client(key=KEY):
    # No retries: a test must see the first answer.
    return DodoPayments(bearer_token=key, base_url=URL, max_retries=0)


def expect(cls, call):
    try:
        call()
    except cls as error:
        return error
    raise AssertionError(f"expected {cls.__name__}")


def main():
    api = client()

    customer = api.customers.create(email="ada@example.com", name="Ada Lovelace", preferred_locale="en")
    assert customer.customer_id.startswith("cus_")
    assert customer.email == "ada@example.com" and customer.name == "Ada Lovelace"
    assert customer.created_at.tzinfo is not None
    assert customer.preferred_locale == "en"
    fetched = api.customers.retrieve(customer.customer_id)
    assert fetched.customer_id == customer.customer_id and fetched.name == "Ada Lovelace"
    assert fetched.preferred_locale == "en"

    created = api.products.create(
        name="Editor Pro",
        price={"type": "one_time_price", "currency": "EUR", "price": 4900, "discount": 0,
               "purchasing_power_parity": False},
        tax_category="digital_products",
        license_key_enabled=True,
        license_key_activations_limit=2,
    )
    assert created.product_id.startswith("pdt_")
    assert created.price.type == "one_time_price" and created.price.price == 4900
    assert created.price.currency == "EUR" and created.tax_category == "digital_products"
    assert created.is_recurring is False and created.license_key_activations_limit == 2
    assert created.entitlements == [] and created.credit_entitlements == []
    product = {"product_id": created.product_id}
    subscription = {"type": "recurring_price", "currency": "USD", "price": 900,
                    "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                    "subscription_period_count": 20, "subscription_period_interval": "Year"}
    assert api.products.update(created.product_id, price=subscription, description="Monthly") is None
    fetched_product = api.products.retrieve(created.product_id)
    assert fetched_product.price.type == "recurring_price" and fetched_product.price.price == 900
    assert fetched_product.is_recurring is True and fetched_product.description == "Monthly"
    assert fetched_product.tax_category == "digital_products", "absent fields are unchanged"
    # A product made without Dodo's fields answers its defaults.
    plain = httpx.post(f"{URL}/products", headers={"Authorization": f"Bearer {KEY}"},
                       json={"name": "Plain"}).json()
    plain_product = api.products.retrieve(plain["product_id"])
    assert plain_product.price.type == "one_time_price" and plain_product.price.price == 0
    assert plain_product.price.currency == "USD" and plain_product.tax_category == "saas"
    listed_products = list(api.products.list(page_size=1))
    assert [p.product_id for p in listed_products] == [created.product_id, plain["product_id"]]
    assert listed_products[0].price == 900 and listed_products[0].currency == "USD"
    assert listed_products[0].price_detail.type == "recurring_price"
    assert listed_products[0].is_recurring is True
    bad_price = expect(dodopayments.BadRequestError, lambda: api.products.create(
        name="X", price={"type": "one_time_price", "currency": "USD", "price": -1}, tax_category="saas"))
    assert "price.price" in bad_price.body["message"]

    key = api.license_keys.create(customer_id=customer.customer_id, product_id=product["product_id"], key="IMPORTED-KEY-1")
    assert key.id.startswith("lic_")
    assert key.source == "import" and key.status == "active"
    assert key.activations_limit == 2 and key.instances_count == 0
    assert key.key == "IMPORTED-KEY-1" and key.expires_at is None
    assert api.license_keys.retrieve(key.id).key == "IMPORTED-KEY-1"

    conflict = expect(dodopayments.ConflictError, lambda: api.license_keys.create(
        customer_id=customer.customer_id, product_id=product["product_id"], key="IMPORTED-KEY-1"))
    assert conflict.status_code == 409

    expires = dt.datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    updated = api.license_keys.update(key.id, activations_limit=3, expires_at=expires)
    assert updated.activations_limit == 3 and updated.expires_at == expires
    updated = api.license_keys.update(key.id, activations_limit=None)
    assert updated.activations_limit is None and updated.expires_at == expires, "only the named field changes"
    updated = api.license_keys.update(key.id, expires_at=None, activations_limit=2)
    assert updated.expires_at is None and updated.activations_limit == 2

    for n in range(2, 4):
        api.license_keys.create(customer_id=customer.customer_id, product_id=product["product_id"], key=f"IMPORTED-KEY-{n}")
    # This client counts pages from 1: its auto-pagination sees every key once.
    listed = [k.key for k in api.license_keys.list(customer_id=customer.customer_id, page_size=2)]
    assert listed == ["IMPORTED-KEY-1", "IMPORTED-KEY-2", "IMPORTED-KEY-3"], listed
    for number, keys in [(1, ["IMPORTED-KEY-1", "IMPORTED-KEY-2"]), (2, ["IMPORTED-KEY-3"]), (3, [])]:
        page = api.license_keys.list(customer_id=customer.customer_id, page_size=2, page_number=number)
        assert [k.key for k in page.items] == keys, (number, page.items)
    assert [k.key for k in api.license_keys.list(status="disabled")] == []

    activation = api.licenses.activate(license_key="IMPORTED-KEY-1", name="laptop")
    assert activation.id.startswith("lki_")
    assert activation.license_key_id == key.id and activation.name == "laptop"
    assert activation.customer.email == "ada@example.com"
    assert activation.product.product_id == product["product_id"] and activation.product.name == "Editor Pro"
    second = api.licenses.activate(license_key="IMPORTED-KEY-1", name="desktop")
    limit = expect(dodopayments.UnprocessableEntityError,
                   lambda: api.licenses.activate(license_key="IMPORTED-KEY-1", name="third"))
    assert limit.body["code"] == "LICENSE_KEY_LIMIT_REACHED"
    below = expect(dodopayments.UnprocessableEntityError, lambda: api.license_keys.update(key.id, activations_limit=1))
    assert below.body["code"] == "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT"

    instances = list(api.license_key_instances.list(license_key_id=key.id))
    assert [i.name for i in instances] == ["laptop", "desktop"]
    assert api.license_key_instances.retrieve(activation.id).name == "laptop"
    assert api.license_key_instances.update(activation.id, name="workstation").name == "workstation"

    assert api.licenses.validate(license_key="IMPORTED-KEY-1").valid is True
    assert api.licenses.validate(license_key="IMPORTED-KEY-1", license_key_instance_id=activation.id).valid is True
    assert api.licenses.deactivate(license_key="IMPORTED-KEY-1", license_key_instance_id=second.id) is None
    assert api.licenses.validate(license_key="IMPORTED-KEY-1", license_key_instance_id=second.id).valid is False
    assert api.license_keys.retrieve(key.id).instances_count == 1

    expect(dodopayments.NotFoundError, lambda: api.license_keys.retrieve("lic_missing"))
    expect(dodopayments.NotFoundError, lambda: api.licenses.validate(license_key="NO-SUCH-KEY"))
    expect(dodopayments.NotFoundError, lambda: api.licenses.activate(license_key="NO-SUCH-KEY", name="x"))
    expect(dodopayments.NotFoundError, lambda: api.license_key_instances.retrieve("lki_missing"))

    denied = expect(dodopayments.PermissionDeniedError,
                    lambda: client(READ_ONLY_KEY).license_keys.update(key.id, disabled=True))
    assert denied.status_code == 403
    api.license_keys.update(key.id, disabled=True)
    inactive = expect(dodopayments.PermissionDeniedError,
                      lambda: api.licenses.activate(license_key="IMPORTED-KEY-1", name="again"))
    assert inactive.body["code"] == "INACTIVE_LICENSE_KEY"
    assert api.licenses.validate(license_key="IMPORTED-KEY-1").valid is False

    expect(dodopayments.AuthenticationError, lambda: client("lsk_wrong").customers.retrieve(customer.customer_id))
    expect(dodopayments.BadRequestError, lambda: api.customers.create(email="not-an-email", name="X"))
    webhooks(api)
    print("dodopayments: all checks passed")


def webhooks(api):
    import base64

    hook = api.webhooks.create(url="https://example.com/hook", description="ops",
                               filter_types=["license_key.created", "license_update.created"],
                               headers={"X-Env": "prod", "Authorization": "Bearer s3cret"},
                               metadata={"team": "ops"}, rate_limit=10)
    assert hook.id.startswith("wh_") and hook.url == "https://example.com/hook"
    assert hook.description == "ops" and hook.disabled is False and hook.rate_limit == 10
    assert hook.filter_types == ["license_key.created", "license_update.created"]
    assert hook.metadata == {"team": "ops"}
    assert api.webhooks.retrieve(hook.id) == hook
    plain = api.webhooks.create(url="http://127.0.0.1:9/x")
    assert plain.description == "" and plain.filter_types == [] and plain.rate_limit is None

    updated = api.webhooks.update(hook.id, disabled=True, filter_types=[], rate_limit=None)
    assert updated.disabled is True and updated.filter_types == [] and updated.rate_limit is None
    assert updated.description == "ops" and updated.created_at == hook.created_at

    # The client follows `iterator` until `done`: every endpoint once, oldest first.
    assert [w.id for w in api.webhooks.list(limit=1)] == [hook.id, plain.id]
    page = api.webhooks.list(limit=1)
    assert page.done is False and page.iterator and len(page.data) == 1

    secret = api.webhooks.retrieve_secret(hook.id).secret
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_"):])) == 32
    expect(dodopayments.PermissionDeniedError, lambda: client(READ_ONLY_KEY).webhooks.retrieve_secret(hook.id))
    expect(dodopayments.PermissionDeniedError, lambda: client(READ_ONLY_KEY).webhooks.delete(hook.id))
    assert client(READ_ONLY_KEY).webhooks.retrieve(hook.id).id == hook.id

    headers = api.webhooks.headers.retrieve(hook.id)
    assert headers.headers == {"x-env": "prod"} and headers.sensitive == ["authorization"]
    assert api.webhooks.headers.update(hook.id, headers={"X-Team": "ops"}) is None
    assert api.webhooks.headers.retrieve(hook.id).headers == {"x-env": "prod", "x-team": "ops"}

    bad = expect(dodopayments.BadRequestError, lambda: api.webhooks.create(url="ftp://example.com"))
    assert "url" in bad.body["message"]
    expect(dodopayments.BadRequestError,
           lambda: api.webhooks.create(url="https://example.com", filter_types=["payment.succeeded"]))

    assert api.webhooks.delete(plain.id) is None
    expect(dodopayments.NotFoundError, lambda: api.webhooks.retrieve(plain.id))
    assert [w.id for w in api.webhooks.list()] == [hook.id]


if __name__ == "__main__":
    main()
