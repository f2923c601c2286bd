"""The API's error shape (``chatproject.errors``) says a sentence in ``message`` whatever
shape DRF's exception detail had: a string, a list, or a dict such as simplejwt's
``InvalidToken``; never the Python repr of ``ErrorDetail`` objects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework import exceptions as drf
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from chatproject.errors import api_exception_handler

pytestmark = [pytest.mark.django_db]


def assert_a_sentence(message: str) -> None:
    assert "ErrorDetail" not in message and "{" not in message and "[" not in message
    assert message[0].isupper() and message.endswith("."), message


@pytest.mark.parametrize("token", ["nope", "a.b.c"])
def test_a_bad_bearer_token_is_a_401_with_a_sentence(token):
    response = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "UNAUTHORIZED"
    assert_a_sentence(body["message"])
    assert "ErrorDetail" not in response.content.decode()
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_says_so_in_details(alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=-timedelta(seconds=1))

    body = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert_a_sentence(body["message"])
    assert any("expired" in m["message"] for m in body["details"]["messages"])


def test_a_deactivated_users_token_is_refused_with_a_sentence(alice):
    token = AccessToken.for_user(alice)
    alice.is_active = False
    alice.save()

    response = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response.json()["message"] == "User is inactive."


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (drf.PermissionDenied(["Not yours.", "Ask the owner."]), 403, "Not yours."),
        (drf.NotFound({"detail": "No such room", "room": "x"}), 404, "No such room."),
        (drf.AuthenticationFailed({"reason": ["Bad signature"]}), 401, "Bad signature."),
        (drf.APIException({}), 500, "A server error occurred."),
        (drf.ParseError(["Bad", "worse"]), 400, "The request body could not be parsed: Bad."),
    ],
)
def test_list_and_dict_details_become_a_sentence_and_details(exc, status, message):
    response = api_exception_handler(exc, {})

    assert response.status_code == status
    assert response.data["message"] == message
    assert_a_sentence(response.data["message"])
