"""Bots never start an assistant answer, whichever LLM door they knock on: ``stream:request``
on ``/ws/chat/``, ``chat:start`` and ``prompt`` on ``/ws/ai/``, ``POST /api/llm/query`` and
``POST /api/stream``, all FORBIDDEN "Bots can't start the assistant.", with nothing saved
and nothing asked of the model."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from accounts.bots import bot_create, bot_token_create
from chat.models import ChatSession, Membership, Message
from chat.services.sessions import session_create
from chatproject.asgi import application
from llm.models import Stream

from .sse import asgi_client

pytestmark = [pytest.mark.django_db(transaction=True)]

REFUSED = {"code": "FORBIDDEN", "message": "Bots can't start the assistant."}


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True)


@pytest.fixture
def bot_and_room(staff, alice):
    bot = bot_create(by=staff, username="helperbot")
    _, raw = bot_token_create(by=staff, bot_id=bot.pk)
    room = session_create(creator=alice, title="general", member_ids=[bot.pk])
    return bot, raw, room


def nothing_happened(room) -> None:
    assert not Message.objects.filter(session=room).exists()
    assert not Stream.objects.exists()


async def socket(path: str, raw: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(
        application,
        path,
        headers=[(b"authorization", f"Token {raw}".encode())],
    )
    assert (await ws.connect(timeout=5))[0]
    assert (await ws.receive_json_from(timeout=5))["event"] == "connection:success"
    return ws


async def reply_to(ws, event: str, data: dict) -> dict:
    await ws.send_json_to({"event": event, "data": data, "ref": "r"})
    while True:
        frame = await ws.receive_json_from(timeout=5)
        if frame.get("ref") == "r":
            return frame


async def test_a_bots_stream_request_is_refused(ollama_emulator, bot_and_room):
    _, raw, room = bot_and_room
    ws = await socket("/ws/chat/", raw)
    reply = await reply_to(ws, "stream:request", {"sessionId": str(room.pk), "prompt": "hi"})
    assert reply["event"] == "error" and reply["data"] == REFUSED
    await ws.disconnect()
    await database_sync_to_async(nothing_happened)(room)
    assert ollama_emulator.requests() == []


@pytest.mark.parametrize(
    ("event", "data"),
    [("chat:start", {"message": "hi"}), ("prompt", {"message": {"content": "hi"}})],
)
async def test_a_bot_cannot_start_an_answer_on_ws_ai(ollama_emulator, bot_and_room, event, data):
    _, raw, room = bot_and_room
    if event == "prompt":
        data = {**data, "thread": str(room.pk)}
    ws = await socket("/ws/ai/", raw)
    reply = await reply_to(ws, event, data)
    assert reply["event"] == "error"
    assert {k: reply["data"][k] for k in ("code", "message")} == REFUSED
    await ws.disconnect()
    # No conversation made for it either.
    count = await database_sync_to_async(ChatSession.objects.count)()
    assert count == 1
    assert ollama_emulator.requests() == []


def test_a_bots_llm_query_is_refused(ollama_emulator, bot_and_room):
    _, raw, room = bot_and_room
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    response = http.post("/api/llm/query", {"prompt": "hi", "sessionId": str(room.pk)})
    assert response.status_code == 403 and response.json() == REFUSED
    nothing_happened(room)
    assert ollama_emulator.requests() == []


async def test_a_bots_sse_stream_is_refused(ollama_emulator, bot_and_room):
    _, raw, room = bot_and_room
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "llama3.2",
            "chatId": str(room.pk)}  # fmt: skip
    async with asgi_client() as http:
        response = await http.post(
            "/api/stream",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {raw}"},
        )
    assert response.status_code == 403 and response.json() == REFUSED
    await database_sync_to_async(nothing_happened)(room)
    assert ollama_emulator.requests() == []


def test_the_bot_is_still_a_member_who_may_post(bot_and_room):
    bot, raw, room = bot_and_room
    assert Membership.objects.filter(session=room, user=bot).exists()
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    sent = http.post("/api/chat/messages", {"sessionId": str(room.pk), "content": "ok"})
    assert sent.status_code == 201
