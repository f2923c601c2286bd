"""Every login door is limited like ``/api/auth/token`` (``accounts.login_doors``,
``accounts.ratelimit``): ``AUTH_RATE`` attempts per IP and per username, counted across the
doors, then a 429 (a page saying how long to wait on the HTML doors, the contract's
``RATE_LIMITED`` on the API), with ``Retry-After``; the right password doesn't get through
while the limit holds."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Secret-123"
HTML_DOORS = ["/login/", "/admin/login/", "/api-auth/login/"]


# Rates are per hour: django-ratelimit's windows are fixed, and one ending between a test's
# attempts would let the last one through.


def an_address() -> str:
    """An IP of this test's own, so no other test's counter (or run's, on Redis) counts."""
    return "10." + ".".join(str(secrets.randbelow(250)) for _ in range(3))


@pytest.fixture
def staff(make_user):
    """A staff user with a name of its own (per-username counters outlive a test on Redis)."""
    return make_user(f"staff{secrets.token_hex(4)}", is_staff=True, is_superuser=True)


def html_login(client: Client, door: str, username: str, password: str, address: str):
    return client.post(door, {"username": username, "password": password}, REMOTE_ADDR=address)


def api_login(username: str, password: str, address: str):
    return APIClient().post(
        "/api/auth/token", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def assert_refused_page(response):
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    page = response.content.decode()
    assert "Too many login attempts" in page and f"{response['Retry-After']} second" in page


@pytest.mark.parametrize("door", HTML_DOORS)
def test_guessing_at_a_door_is_refused_then_even_the_right_password(door, settings, staff):
    settings.AUTH_RATE = "3/h"
    client = Client()
    address = an_address()
    guesses = [html_login(client, door, staff.username, "wrong", address) for _ in range(3)]

    right = html_login(client, door, staff.username, PASSWORD, address)

    assert [r.status_code for r in guesses] == [200, 200, 200]
    assert_refused_page(right)
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("door", HTML_DOORS)
def test_a_username_is_limited_across_addresses(door, settings, staff):
    settings.AUTH_RATE = "3/h"
    for _ in range(3):
        html_login(Client(), door, staff.username.upper(), "wrong", an_address())

    assert_refused_page(html_login(Client(), door, staff.username, PASSWORD, an_address()))


@pytest.mark.parametrize("door", HTML_DOORS)
def test_an_address_is_limited_across_usernames(door, settings):
    settings.AUTH_RATE = "3/h"
    address = an_address()
    for n in range(3):
        html_login(Client(), door, f"nobody{n}{secrets.token_hex(3)}", "wrong", address)

    assert_refused_page(html_login(Client(), door, "someone-else", "wrong", address))


def test_the_doors_share_one_budget_per_account(settings, staff):
    settings.AUTH_RATE = "4/h"
    api_login(staff.username, "wrong", an_address())
    for door in HTML_DOORS:
        html_login(Client(), door, staff.username, "wrong", an_address())

    refused = api_login(staff.username, PASSWORD, an_address())

    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.json()["retryAfter"] == int(refused["Retry-After"]) >= 1
    assert_refused_page(
        html_login(Client(), "/admin/login/", staff.username, PASSWORD, an_address())
    )


@pytest.mark.parametrize("door", HTML_DOORS)
def test_showing_the_login_page_is_not_an_attempt(door, settings):
    settings.AUTH_RATE = "1/h"
    client = Client(REMOTE_ADDR=an_address())

    assert all(client.get(door).status_code == 200 for _ in range(3))


@pytest.mark.parametrize("door", HTML_DOORS)
def test_auth_rate_off_lets_every_attempt_through(door, settings, staff):
    settings.AUTH_RATE = "off"
    client = Client()
    address = an_address()
    for _ in range(25):
        assert html_login(client, door, staff.username, "wrong", address).status_code == 200

    assert html_login(client, door, staff.username, PASSWORD, address).status_code == 302
    assert int(client.session["_auth_user_id"]) == staff.pk
