"""The web app's account pages: sign up, log in, log out, with the session cookie."""

import secrets

import pytest
from django.contrib.auth import get_user_model

from tests.pages_html import csp_violations, external_urls

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "pw-Secret-123"


@pytest.fixture(autouse=True)
def no_auth_limit(settings):
    """Page tests post many times from one address; the limit has its own test below."""
    settings.AUTH_RATE = "off"


def signup(client, **fields):
    data = {"username": "dora", "email": "", "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/signup/", {**data, **fields})


def test_signup_creates_the_account_logs_in_and_goes_to_the_session_list(client):
    response = signup(client, email="dora@example.com")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="dora")
    assert user.email == "dora@example.com" and user.check_password(PASSWORD)
    assert int(client.session["_auth_user_id"]) == user.pk
    assert "Your sessions" in client.get("/").content.decode()


def test_signup_refuses_two_different_passwords(client):
    response = signup(client, password2="something-else-123")

    assert response.status_code == 400
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_signup_applies_the_password_validators_of_the_api(client):
    response = signup(client, password1="123", password2="123")

    assert response.status_code == 400
    assert "too short" in response.content.decode()
    assert not User.objects.exists()


def test_signup_refuses_a_taken_username_whatever_its_case(client, make_user):
    make_user("Dora")

    response = signup(client, username="dora")

    assert response.status_code == 400
    assert "That username is taken." in response.content.decode()


def test_signup_refuses_a_username_with_spaces(client):
    response = signup(client, username="dora explorer")

    assert response.status_code == 400
    assert "Use letters, digits" in response.content.decode()


def test_login_with_the_right_password_goes_to_the_session_list(client, make_user):
    make_user("erin")

    response = client.post("/login/", {"username": "erin", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/"
    assert "Your sessions" in client.get("/").content.decode()


def test_login_follows_next_on_this_site_only(client, make_user):
    make_user("erin")

    inside = client.post("/login/?next=/sessions/new/", {"username": "erin", "password": PASSWORD})
    client.logout()
    outside = client.post(
        "/login/?next=https://evil.example/", {"username": "erin", "password": PASSWORD}
    )

    assert inside["Location"] == "/sessions/new/"
    assert outside["Location"] == "/"


def test_login_with_a_wrong_password_says_so(client, make_user):
    make_user("erin")

    response = client.post("/login/", {"username": "erin", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_deactivated_user_cannot_log_in(client, make_user):
    make_user("banned", is_active=False)

    response = client.post("/login/", {"username": "banned", "password": PASSWORD})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_login_page_is_rate_limited_per_address(client, make_user, settings):
    settings.AUTH_RATE = "2/m"
    make_user("erin")
    # An address of this test's own, so no other test's counter (or run's, on Redis) counts.
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"

    codes = [
        client.post(
            "/login/", {"username": "erin", "password": "wrong"}, REMOTE_ADDR=address
        ).status_code
        for _ in range(3)
    ]

    assert codes == [200, 200, 429]


def test_a_logged_in_user_skips_the_login_and_signup_pages(client, make_user):
    client.force_login(make_user("erin"))

    assert client.get("/login/")["Location"] == "/"
    assert client.get("/signup/")["Location"] == "/"


def test_logout_is_a_post_and_ends_the_session(client, make_user):
    client.force_login(make_user("erin"))

    refused = client.get("/logout/")
    response = client.post("/logout/")

    assert refused.status_code == 405
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/login/", "/signup/"])
def test_account_pages_load_nothing_from_other_hosts_and_need_no_inline_code(client, path):
    html = client.get(path).content.decode()

    assert external_urls(html) == []
    assert csp_violations(html) == []
    assert 'name="csrfmiddlewaretoken"' in html
