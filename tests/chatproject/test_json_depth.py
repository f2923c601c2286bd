"""Deeply nested JSON at every door (``chatproject.parsers``, ``chatproject.json_depth``): a
REST body, an attachment's ``metadata``, the SSE body and a WebSocket frame nested past the
limit get the contract's 400 ``VALIDATION_ERROR`` (a frame: ``BAD_FRAME``, the socket stays
open), never a 500 from ``RecursionError`` nor a reply that can't be encoded."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from chat.services.messages import message_send
from chatproject.asgi import application
from chatproject.json_depth import MAX_JSON_DEPTH, nested_too_deep

pytestmark = [pytest.mark.django_db(transaction=True)]

BRACKETS = "[" * 3000


def nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture(autouse=True)
def no_auth_rate_limit(settings):
    settings.AUTH_RATE = "off"


def assert_validation_error(response):
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "RecursionError" not in body["message"] and body["message"].endswith(".")


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def test_the_depth_is_counted_without_recursion_and_at_the_limit_is_fine():
    assert not nested_too_deep(nested(MAX_JSON_DEPTH))
    assert nested_too_deep(nested(MAX_JSON_DEPTH + 1))
    assert nested_too_deep({"a": [1, {"b": nested(MAX_JSON_DEPTH)}]})
    assert nested_too_deep(nested(100_000))
    assert not nested_too_deep("[[[[")


@pytest.mark.parametrize("path", ["/api/auth/token", "/api/auth/register"])
@pytest.mark.parametrize("body", [BRACKETS, BRACKETS + "]" * 3000], ids=["open", "closed"])
def test_an_unauthenticated_door_answers_400_to_a_deep_body(path, body):
    client = Client(raise_request_exception=False)

    assert_validation_error(client.post(path, body, content_type="application/json"))


@pytest.mark.parametrize("path", ["/api/chat/messages", "/api/chat/sessions", "/api/llm/query"])
def test_an_authenticated_door_answers_400_to_a_deep_body(path, alice):
    client = Client(raise_request_exception=False)

    response = client.post(path, BRACKETS, content_type="application/json", **bearer(alice))

    assert_validation_error(response)


def test_a_body_past_the_limit_that_python_could_parse_is_refused_too(room, alice):
    body = {"sessionId": str(room.pk), "content": "hi", "clientId": nested(MAX_JSON_DEPTH + 1)}

    response = Client().post(
        "/api/chat/messages", body, content_type="application/json", **bearer(alice)
    )

    assert_validation_error(response)


def test_deep_attachment_metadata_is_refused(room, alice):
    message = message_send(author=alice, session_id=room.pk, content="see link")
    body = {
        "fileName": "x.txt",
        "fileUrl": "https://example.com/x.txt",
        "mimeType": "text/plain",
        "fileSize": 1,
        "metadata": {"deep": nested(300)},
    }

    response = Client(raise_request_exception=False).post(
        f"/api/chat/messages/{message.pk}/attachments",
        body,
        content_type="application/json",
        **bearer(alice),
    )

    assert_validation_error(response)
    assert not message.attachments.exists()


def test_the_sse_door_refuses_a_deep_body(alice):
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "x": nested(300)}

    response = Client().post("/api/stream", body, content_type="application/json", **bearer(alice))

    assert_validation_error(response)


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/ai/"])
@pytest.mark.parametrize(
    "frame",
    [
        BRACKETS,
        '{"event": "ping", "ref": ' + BRACKETS[:300] + "]" * 300 + "}",
        '{"event": "ping", "data": {"x": ' + BRACKETS[:300] + "]" * 300 + "}}",
    ],
    ids=["brackets", "deep-ref", "deep-data"],
)
async def test_a_deep_frame_is_a_bad_frame_and_the_socket_stays_open(path, frame, alice):
    ws = WebsocketCommunicator(application, f"{path}?token={AccessToken.for_user(alice)}")
    assert (await ws.connect(timeout=5))[0]
    first = await ws.receive_json_from(timeout=5)
    assert first["event"] == "connection:success"

    await ws.send_to(text_data=frame)
    reply = await ws.receive_json_from(timeout=5)
    await ws.send_json_to({"event": "ping", "ref": "after"})
    after = await ws.receive_json_from(timeout=5)
    await ws.disconnect()

    assert reply["event"] == "error" and reply["data"]["code"] == "BAD_FRAME"
    assert after["event"] == "ack" and after["ref"] == "after"
