"""``POST /api/stream`` (seed 003) through the real ASGI application, against the Ollama
emulator: the event sequence and its fields, refusals as JSON before any stream, saving into
a chat (and surviving a database error), Ollama's failures, and a client hanging up."""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.test import Client
from django.utils.crypto import get_random_string

from chat.models import Message
from chat.services.sessions import session_create
from llm import sse_events
from llm.services import answer_records

from .sse import asgi_client, bearer, hang_up_after, parse_sse

pytestmark = [pytest.mark.django_db(transaction=True)]

HELLO = {"messages": [{"role": "user", "content": "hello there"}], "model": "llama3.2"}


@pytest.fixture
async def room(alice, bob):
    return await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()


async def post(body, headers=None, *, raw: bytes | None = None):
    async with asgi_client() as http:
        content = raw if raw is not None else json.dumps(body).encode()
        return await http.post(
            "/api/stream",
            content=content,
            headers={"Content-Type": "application/json", **(headers or {})},
        )


def chunks(events) -> list[dict]:
    return [e["data"] for e in events if e["event"] == sse_events.MESSAGE_CHUNK]


@database_sync_to_async
def messages_of(session) -> list[Message]:
    return list(Message.objects.filter(session=session).order_by("seq"))


# -- the stream -------------------------------------------------------------------------


async def test_an_answer_is_start_then_chunks_then_complete(ollama_emulator_settings, alice):
    ollama_emulator_settings.configure(reply="General Kenobi, you are a bold one.")

    response = await post(HELLO, bearer(alice))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_sse(response.content)
    start, *middle, complete = events
    message_id = start["data"]["messageId"]
    assert start == {
        "event": "message-start",
        "id": None,
        "data": sse_events.message_start(message_id=message_id),
    }
    assert middle and all(e["event"] == "message-chunk" for e in middle)
    for data in chunks(events):
        assert data == sse_events.message_chunk(message_id=message_id, content=data["content"])
    text = "".join(c["content"] for c in chunks(events))
    assert text == "General Kenobi, you are a bold one."
    assert complete["event"] == "message-complete"
    assert complete["data"] == sse_events.message_complete(
        message_id=message_id,
        full_content=text,
        model="llama3.2",
        finish_reason="stop",
        tokens=7,
        prompt_tokens=complete["data"]["promptTokens"],
    )


async def test_the_conversation_and_system_prompt_are_the_context(ollama_emulator_settings, alice):
    body = {
        "messages": [
            {"id": "m1", "role": "user", "content": "first", "timestamp": "2024-01-01T00:00:00Z"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "second"},
        ],
        "model": "qwen2.5",
        "systemPrompt": "Be brief.",
    }

    response = await post(body, bearer(alice))

    assert parse_sse(response.content)[-1]["data"]["fullContent"] == "Echo: second"
    (request,) = ollama_emulator_settings.requests()
    assert request["model"] == "qwen2.5"
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", "Be brief."),
        ("user", "first"),
        ("assistant", "an answer"),
        ("user", "second"),
    ]
    assert {t["function"]["name"] for t in request["tools"]} == {"calculator", "get_current_time"}


async def test_a_tool_call_is_made_and_the_answer_goes_on(ollama_emulator_settings, alice):
    ollama_emulator_settings.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "6 * 7"}}]
    )

    response = await post(HELLO, bearer(alice))

    assert parse_sse(response.content)[-1]["data"]["fullContent"] == "Tool result: 42"


# -- refusals come before any stream, as JSON ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"messages": [], "model": "llama3.2"}, "messages"),
        ({"model": "llama3.2"}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}], "model": "llama3.2"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}], "model": "llama3.2"}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}], "model": "llama3.2"}, "messages"),
        ({"messages": [{"role": "user", "content": "  "}], "model": "llama3.2"}, "messages"),
        ({**HELLO, "chatId": "not-a-uuid"}, "chatId"),
    ],
)
async def test_an_invalid_body_is_a_json_400_before_any_stream(
    ollama_emulator_settings, alice, body, field
):
    response = await post(body, bearer(alice))

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]
    assert ollama_emulator_settings.requests() == []


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_a_400(ollama_emulator_settings, alice, raw):
    response = await post(None, bearer(alice), raw=raw)

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_no_credentials_or_a_bad_token_is_a_401(ollama_emulator_settings):
    assert (await post(HELLO)).status_code == 401
    refused = await post(HELLO, {"Authorization": "Bearer not-a-jwt"})
    assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_an_unknown_chat_is_a_404_and_someone_elses_a_403(
    ollama_emulator_settings, room, carol
):
    unknown = await post({**HELLO, "chatId": "6f1c1b2e-1111-4a4a-8b8b-123456789abc"}, bearer(carol))
    theirs = await post({**HELLO, "chatId": str(room.pk)}, bearer(carol))

    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    assert (theirs.status_code, theirs.json()["code"]) == (403, "FORBIDDEN")
    assert ollama_emulator_settings.requests() == []


async def test_other_methods_are_refused(alice):
    async with asgi_client() as http:
        response = await http.get("/api/stream", headers=bearer(alice))
    assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_when_every_slot_is_taken_it_is_stream_limit(
    ollama_emulator_settings, alice, settings
):
    settings.MAX_CONCURRENT_STREAMS = 0

    response = await post(HELLO, bearer(alice))

    assert (response.status_code, response.json()["code"]) == (429, "STREAM_LIMIT")


async def test_past_the_llm_request_budget_it_is_rate_limited(ollama_emulator_settings, alice):
    for _ in range(10):
        assert (await post(HELLO, bearer(alice))).status_code == 200

    refused = await post(HELLO, bearer(alice))

    assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
    assert int(refused.headers["retry-after"]) >= 1


# -- the session cookie needs the CSRF token -----------------------------------------------


@database_sync_to_async
def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def test_the_session_cookie_works_with_the_csrf_token(ollama_emulator_settings, alice):
    session = await session_cookie(alice)
    csrf = get_random_string(32)
    cookies = f"sessionid={session}; csrftoken={csrf}"

    without = await post(HELLO, {"Cookie": cookies})
    with_token = await post(HELLO, {"Cookie": cookies, "X-CSRFToken": csrf})

    assert (without.status_code, without.json()["code"]) == (403, "FORBIDDEN")
    assert with_token.status_code == 200
    assert parse_sse(with_token.content)[-1]["event"] == "message-complete"


# -- saving into a chat ---------------------------------------------------------------------


async def test_with_a_chat_id_the_prompt_and_the_answer_are_saved(
    ollama_emulator_settings, room, bob
):
    body = {**HELLO, "chatId": str(room.pk)}

    events = parse_sse((await post(body, bearer(bob))).content)

    prompt, answer = await messages_of(room)
    assert (prompt.role, prompt.author_id, prompt.content) == ("user", bob.pk, "hello there")
    assert answer.role == "assistant" and answer.author_id is None
    assert str(answer.pk) == events[0]["data"]["messageId"]
    assert answer.content == events[-1]["data"]["fullContent"] == "Echo: hello there"
    assert answer.metadata["status"] == "completed"
    assert answer.metadata["finishReason"] == "stop"
    assert answer.tokens == 3


@pytest.mark.parametrize("broken", ["message_store_one", "assistant_message_create",
                                    "assistant_message_finish"])  # fmt: skip
async def test_a_database_error_is_logged_and_the_stream_goes_on(
    ollama_emulator_settings, room, bob, monkeypatch, caplog, broken
):
    def fail(*args, **kwargs):
        raise DatabaseError("the database is gone")

    monkeypatch.setattr(answer_records, broken, fail)
    caplog.set_level(logging.ERROR, logger="llm.services.answer_records")

    response = await post({**HELLO, "chatId": str(room.pk)}, bearer(bob))

    events = parse_sse(response.content)
    assert response.status_code == 200
    assert [e["event"] for e in events][:: len(events) - 1] == ["message-start", "message-complete"]
    assert events[-1]["data"]["fullContent"] == "Echo: hello there"
    assert "the database is gone" in caplog.text


# -- Ollama's failures ------------------------------------------------------------------------


async def test_an_unknown_model_is_an_error_event(ollama_emulator_settings, alice):
    response = await post({**HELLO, "model": "nope"}, bearer(alice))

    start, error = parse_sse(response.content)
    assert start["event"] == "message-start"
    assert error["event"] == "error"
    assert error["data"]["code"] == "INVALID_MODEL" and "nope" in error["data"]["message"]


async def test_ollama_down_is_an_error_event_and_a_chat_keeps_the_failure(room, bob, ollama_down):
    response = await post({**HELLO, "chatId": str(room.pk)}, bearer(bob))

    events = parse_sse(response.content)
    assert events[-1] == {
        "event": "error",
        "id": None,
        "data": sse_events.error(
            message="The language model server can't be reached.", code="LLM_UNAVAILABLE"
        ),
    }
    _, answer = await messages_of(room)
    assert answer.metadata["status"] == "failed"
    assert answer.metadata["errorCode"] == "LLM_UNAVAILABLE"


async def test_an_error_mid_answer_keeps_the_text_so_far(ollama_emulator_settings, alice):
    ollama_emulator_settings.configure(reply="one two three four", failure="cut", fail_after=2)

    events = parse_sse((await post(HELLO, bearer(alice))).content)

    assert "".join(c["content"] for c in chunks(events)) == "one two"
    assert events[-1]["event"] == "error"
    assert events[-1]["data"]["code"] == "LLM_UNAVAILABLE"


# -- a client hanging up ----------------------------------------------------------------------


async def test_a_client_that_hangs_up_cancels_the_ollama_request(
    ollama_emulator_settings, room, bob
):
    ollama_emulator_settings.configure(num_tokens=500, delay_ms=20)
    body = json.dumps({**HELLO, "chatId": str(room.pk)}).encode()
    headers = {"content-type": "application/json", **bearer(bob)}

    events = await hang_up_after(
        "/api/stream", body, headers, enough=lambda seen: len(chunks(seen)) >= 3
    )

    gone = await ollama_emulator_settings.await_event("disconnect", within=5)
    assert gone["tokens_sent"] < 500
    assert ollama_emulator_settings.events("complete") == []
    _, answer = await messages_of(room)
    sent = "".join(c["content"] for c in chunks(events))
    assert answer.metadata["status"] == "stopped"
    assert answer.content.startswith(sent) and answer.content
