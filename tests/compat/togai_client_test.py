"""Drives licensed with Togai's official Python client, asserting what it returns.

Run by tests/compat.rs with LICENSED_URL and LICENSED_API_KEY set.
"""

import datetime as dt
import os

from togai_client import ApiClient, Configuration, LicensesApi
from togai_client.exceptions import (
    ApiException,
    BadRequestException,
    NotFoundException,
    UnauthorizedException,
)
from togai_client.models import LicenseEntryDetailsUpdateRequest, LicenseUpdateRequest

URL = os.environ["LICENSED_URL"]
KEY = os.environ["LICENSED_API_KEY"]
UTC = dt.timezone.utc


def client(key=KEY):
    return LicensesApi(ApiClient(Configuration(host=URL, access_token=key)))


def add(api, kind, quantity, when, **extra):
    return api.add_license_update_entry(
        LicenseUpdateRequest(
            license_id="seats",
            account_id="acme",
            update_type=kind,
            quantity=quantity,
            effective_from=when,
            **extra,
        )
    )


def expect_error(cls, status, call):
    try:
        call()
    except cls as error:
        assert error.status == status, (error.status, error.body)
        return error
    raise AssertionError(f"expected {cls.__name__} ({status})")


def main():
    api = client()

    first = add(api, "ABSOLUTE", 10, dt.datetime(2024, 1, 1, tzinfo=UTC),
                idempotency_key="order-1", metadata={"plan": "pro"})
    assert first.quantity == 10
    assert first.license_id == "seats" and first.account_id == "acme"
    assert first.effective_from == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert first.metadata == {"plan": "pro"}
    assert first.created_at.tzinfo is not None

    replay = add(api, "ABSOLUTE", 10, dt.datetime(2024, 1, 1, tzinfo=UTC),
                 idempotency_key="order-1", metadata={"plan": "pro"})
    assert replay.created_at == first.created_at, "a repeat returns the original response"
    conflict = expect_error(ApiException, 409, lambda: add(
        api, "ABSOLUTE", 11, dt.datetime(2024, 1, 1, tzinfo=UTC), idempotency_key="order-1"))
    assert "idempotencyKey" in conflict.body

    # A naive datetime is read as UTC.
    relative = add(api, "RELATIVE", 2.5, dt.datetime(2024, 2, 1, 12, 0))
    assert relative.quantity == 12.5
    assert relative.effective_from == dt.datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
    assert relative.metadata is None

    # Backdated: re-resolves the February entry.
    backdated = add(api, "RELATIVE", -1, dt.datetime(2024, 1, 15, tzinfo=UTC))
    assert backdated.quantity == 9

    refused = expect_error(BadRequestException, 400, lambda: add(
        api, "RELATIVE", -100, dt.datetime(2024, 1, 20, tzinfo=UTC)))
    assert "negative" in refused.data.message

    # Paging with nextToken, with filters.
    page = api.get_license_updates(account_id="acme", license_id="seats", page_size=2)
    assert len(page.data) == 2 and page.next_token
    rest = api.get_license_updates(next_token=page.next_token, page_size=2)
    assert len(rest.data) == 1 and rest.next_token is None
    listed = {e.effective_from: e.quantity for e in page.data + rest.data}
    assert listed == {
        dt.datetime(2024, 1, 1, tzinfo=UTC): 10,
        dt.datetime(2024, 1, 15, tzinfo=UTC): 9,
        dt.datetime(2024, 2, 1, 12, tzinfo=UTC): 11.5,
    }, listed
    at = api.get_license_updates(effective_from=dt.datetime(2024, 1, 15, tzinfo=UTC))
    assert [e.quantity for e in at.data] == [9]
    assert api.get_license_updates(account_id="nobody").data == []
    expect_error(ApiException, 422, lambda: api.get_license_updates(page_size=51))

    updated = api.update_license_entry_details(
        license_id="seats",
        license_entry_details_update_request=LicenseEntryDetailsUpdateRequest(
            account_id="acme",
            effective_from=dt.datetime(2024, 1, 1, tzinfo=UTC),
            metadata={"plan": "enterprise"},
        ),
    )
    assert updated.metadata == {"plan": "enterprise"} and updated.quantity == 10
    expect_error(NotFoundException, 404, lambda: api.update_license_entry_details(
        license_id="seats",
        license_entry_details_update_request=LicenseEntryDetailsUpdateRequest(
            account_id="acme", effective_from=dt.datetime(2023, 1, 1, tzinfo=UTC), metadata={}),
    ))

    expect_error(UnauthorizedException, 401, lambda: client("lsk_wrong").get_license_updates())
    print("togai-client: all checks passed")


if __name__ == "__main__":
    main()
