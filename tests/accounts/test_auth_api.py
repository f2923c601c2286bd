"""The accounts REST doors: register, token, refresh, me, and the brute-force limit on them."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "pw-Secret-123"


def _clear_own_cache_keys() -> None:
    """Forget this run's cached counters. On Redis only this run's keys go: the server may be
    shared with other runs, and ``cache.clear()`` would flush all of them."""
    client_of = getattr(cache, "_cache", None)
    if hasattr(client_of, "get_client"):
        redis = client_of.get_client(write=True)
        keys = list(redis.scan_iter(match=cache.make_key("*")))
        if keys:
            redis.delete(*keys)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def fresh_rate_counters():
    _clear_own_cache_keys()
    yield
    _clear_own_cache_keys()


@pytest.fixture
def api():
    return APIClient()


def register(api, ip="127.0.0.1", **body):
    return api.post("/api/auth/register", body, format="json", REMOTE_ADDR=ip)


def token(api, username, password=PASSWORD, ip="127.0.0.1"):
    body = {"username": username, "password": password}
    return api.post("/api/auth/token", body, format="json", REMOTE_ADDR=ip)


# --- register --------------------------------------------------------------------------------


def test_register_creates_the_user_and_returns_id_and_username(api):
    response = register(api, username="dora", password=PASSWORD, email="dora@example.com")

    assert response.status_code == 201
    user = User.objects.get(username="dora")
    assert response.json() == {"id": user.pk, "username": "dora"}
    assert user.check_password(PASSWORD) and user.email == "dora@example.com"


def test_register_works_with_a_trailing_slash(api):
    response = api.post(
        "/api/auth/register/", {"username": "eve", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 201


def test_register_refuses_a_taken_username_whatever_its_case(api, make_user):
    make_user("dora")

    response = register(api, username="DORA", password=PASSWORD)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and "username" in body["details"]
    assert User.objects.filter(username__iexact="dora").count() == 1


def test_register_refuses_a_weak_password_and_says_why(api):
    response = register(api, username="dora", password="123")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"]["password"], "the validators' messages name the fix"
    assert not User.objects.filter(username="dora").exists()


def test_register_refuses_a_body_that_is_not_json(api):
    response = api.post("/api/auth/register", data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"username": ["dora"], "password": PASSWORD},
        {"username": "dora", "password": {"p": 1}},
        {"username": "dora", "password": None},
        {"username": "dora"},
        {"username": "bad name!", "password": PASSWORD},
        {"username": "dora", "password": PASSWORD, "email": "not-an-email"},
    ],
    ids=[
        "list-username",
        "dict-password",
        "null-password",
        "no-password",
        "bad-chars",
        "bad-email",
    ],
)
def test_register_refuses_wrong_types_and_missing_fields(api, body):
    response = api.post("/api/auth/register", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert User.objects.count() == 0


def test_register_refuses_a_json_array_body(api):
    response = api.post("/api/auth/register", ["dora", PASSWORD], format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


# --- token and refresh -----------------------------------------------------------------------


def test_token_returns_an_access_and_a_refresh_token_that_authenticate(api, alice):
    response = token(api, "alice")

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert api.get("/api/auth/me").json()["username"] == "alice"


def test_token_with_a_wrong_password_is_401(api, alice):
    response = token(api, "alice", password="wrong-password")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_token_for_an_unknown_user_is_401(api):
    assert token(api, "nobody").status_code == 401


def test_token_for_a_deactivated_user_is_401(api, make_user):
    make_user("banned", is_active=False)
    assert token(api, "banned").status_code == 401


def test_token_refuses_a_body_without_a_password_with_400(api, alice):
    response = api.post("/api/auth/token", {"username": "alice"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_refresh_rotates_and_the_used_refresh_token_is_blacklisted(api, alice):
    pair = token(api, "alice").json()

    first = api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")

    assert first.status_code == 200
    assert {"access", "refresh"} <= set(first.json())
    assert first.json()["refresh"] != pair["refresh"]
    assert BlacklistedToken.objects.count() == 1

    again = api.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["code"] == "UNAUTHORIZED"

    rotated = api.post(
        "/api/auth/token/refresh", {"refresh": first.json()["refresh"]}, format="json"
    )
    assert rotated.status_code == 200


@pytest.mark.parametrize("refresh", ["garbage", ""])
def test_refresh_with_a_bad_token_is_refused(api, refresh):
    response = api.post("/api/auth/token/refresh", {"refresh": refresh}, format="json")

    assert response.status_code == (401 if refresh else 400)


def test_an_access_token_is_not_accepted_as_a_refresh_token(api, alice):
    pair = token(api, "alice").json()

    response = api.post("/api/auth/token/refresh", {"refresh": pair["access"]}, format="json")

    assert response.status_code == 401


# --- me --------------------------------------------------------------------------------------


def test_me_returns_the_caller(client_for, alice):
    response = client_for(alice).get("/api/auth/me/")

    assert response.status_code == 200
    assert response.json()["id"] == alice.pk
    assert response.json()["username"] == "alice"


def test_me_without_credentials_is_401(api):
    response = api.get("/api/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_me_with_a_bad_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")

    response = api.get("/api/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_me_with_a_refresh_token_instead_of_an_access_token_is_401(api, alice):
    pair = token(api, "alice").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['refresh']}")

    assert api.get("/api/auth/me").status_code == 401


# --- rate limit ------------------------------------------------------------------------------


def _assert_rate_limited(response):
    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert int(response["Retry-After"]) >= 1
    assert response.json()["retryAfter"] == int(response["Retry-After"])


def test_the_fourth_register_from_one_ip_is_rate_limited(api, settings):
    settings.AUTH_RATE = "3/m"
    for n in range(3):
        assert register(api, ip="10.0.0.1", username=f"u{n}", password=PASSWORD).status_code == 201

    fourth = register(api, ip="10.0.0.1", username="u3", password=PASSWORD)

    _assert_rate_limited(fourth)
    assert not User.objects.filter(username="u3").exists()
    assert register(api, ip="10.0.0.2", username="u4", password=PASSWORD).status_code == 201


def test_the_fourth_token_attempt_for_one_username_is_limited_across_ips(api, settings, alice):
    settings.AUTH_RATE = "3/m"
    for n in range(3):
        assert token(api, "alice", password="wrong", ip=f"10.0.1.{n}").status_code == 401

    fourth = token(api, "ALICE", ip="10.0.1.9")

    _assert_rate_limited(fourth)
    assert token(api, "bob-does-not-exist", ip="10.0.1.10").status_code == 401


def test_the_fourth_token_attempt_from_one_ip_is_limited_across_usernames(api, settings):
    settings.AUTH_RATE = "3/m"
    for n in range(3):
        assert token(api, f"nobody{n}", ip="10.0.2.1").status_code == 401

    _assert_rate_limited(token(api, "nobody9", ip="10.0.2.1"))


def test_auth_rate_off_disables_the_limit(api, settings, alice):
    settings.AUTH_RATE = "off"

    for n in range(6):
        assert register(api, ip="10.0.3.1", username=f"v{n}", password=PASSWORD).status_code == 201
    for _ in range(6):
        assert token(api, "alice", ip="10.0.3.1").status_code == 200


def test_token_refuses_a_body_that_is_not_json(api):
    response = api.post("/api/auth/token", data="{{", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_refresh_for_a_deleted_user_is_401(api, make_user):
    user = make_user("shortlived")
    pair = token(api, "shortlived").json()
    user.delete()

    response = api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_refresh_for_a_deactivated_user_is_401(api, alice):
    pair = token(api, "alice").json()
    alice.is_active = False
    alice.save()

    response = api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 401
