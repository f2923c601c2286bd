"""``@assistant`` (or ``@<agent name>``) in a person's message starts a room stream that
answers that message, through both doors (``message:send`` and ``POST /api/chat/messages``),
against the Ollama emulator; a refusal reaches the sender alone; bots, webhooks and the
assistant's own answers never start one."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from accounts.bots import bot_create, bot_token_create
from chat.broadcaster import bind_loop, run_soon
from chat.models import Message
from chat.services.sessions import session_create
from chat.services.webhooks import webhook_create
from chat.throttles import throttle_check
from chatproject.errors import DomainError
from llm.mention_target import mention_target
from llm.models import Agent, Stream

from ..chat.conftest import frames_for, request
from .sse import asgi_client, bearer
from .streams import WITHIN_S, frames_until_end, receive, streams_finished, streams_stopped

pytestmark = [pytest.mark.django_db(transaction=True)]

QUIET_S = 1.5


@pytest.fixture
async def room(alice, bob):
    return await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True)


async def joined(ws_connect, user, room):
    ws = await ws_connect(user)
    reply = await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="join")
    assert reply["event"] == "ack", reply
    return ws


async def send(ws, room, content: str, ref="send", **extra) -> dict:
    """``message:send``; its ack's message. Frames that overtook the ack are kept."""
    await ws.send_json_to(
        {"event": "message:send", "data": {"sessionId": str(room.pk), "content": content,
                                           **extra}, "ref": ref}
    )  # fmt: skip
    pending = ws.__dict__.setdefault("pending", [])
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = await ws.receive_json_from(timeout=WITHIN_S)
            if frame.get("ref") == ref and frame["event"] in ("ack", "error"):
                assert frame["event"] == "ack", frame
                return frame["data"]
            pending.append(frame)


async def next_named(ws, event: str) -> dict:
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = await receive(ws)
            if frame["event"] == event:
                return frame["data"]


@database_sync_to_async
def streams() -> list[Stream]:
    return list(Stream.objects.order_by("started_at"))


@database_sync_to_async
def messages_of(room) -> list[Message]:
    return list(Message.objects.filter(session=room).order_by("seq"))


# -- the mention is found -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@assistant hi", None),
        ("hey @Assistant, what time is it?", None),
        ("@code helper sum this", "two"),
        ("ask @CODE please", "one"),
        ("(@code)", "one"),
    ],
)
def test_a_mention_names_the_assistant_or_the_longest_agent_name(text, expected):
    agents = [("one", "code"), ("two", "Code Helper")]
    found = mention_target(text, agents)
    assert found is not None and found.agent_id == expected


@pytest.mark.parametrize(
    "text", ["no mention", "mail me@assistant.org", "@assistants", "@assistant_fan", "@bob hi"]
)
def test_other_texts_mention_no_assistant(text):
    assert mention_target(text, [("one", "code")]) is None


async def test_a_listener_told_from_a_database_thread_can_use_the_database(room):
    told = asyncio.get_running_loop().create_future()

    async def listener(session_id):
        count = Message.objects.filter(session_id=session_id).count
        told.set_result(await database_sync_to_async(count)())

    bind_loop()
    assert await database_sync_to_async(lambda: run_soon(listener, room.pk))()
    assert await asyncio.wait_for(told, WITHIN_S) == 0


# -- the answer streams into the room ------------------------------------------------------


async def test_a_mention_over_the_socket_streams_an_answer_to_that_message(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    prompt = await send(a, room, "@assistant what is up?")
    start = await next_named(b, "stream:start")
    frames = await frames_until_end(b, start["streamId"])
    await streams_finished()

    assert frames[-1]["event"] == "stream:complete"
    assert frames[-1]["data"]["content"] == "Echo: alice: @assistant what is up?"
    assert start["requestedBy"] == {"id": alice.pk, "username": "alice"}
    (stream,) = await streams()
    assert str(stream.user_message_id) == prompt["id"]
    question, answer = await messages_of(room)
    assert str(question.pk) == prompt["id"], "no new user message"
    assert answer.role == "assistant" and answer.parent_id is None
    assert str(answer.pk) == start["messageId"] == str(stream.message_id)
    assert answer.content == "Echo: alice: @assistant what is up?"
    # The web app offers "Edit and resend" on the prompt an answer names.
    assert answer.metadata["promptId"] == prompt["id"]
    assert stream.status == Stream.Status.COMPLETED
    sent = ollama_emulator_settings.requests()[0]["messages"]
    assert sent[-1] == {"role": "user", "content": "alice: @assistant what is up?"}


async def test_a_mention_in_a_thread_is_answered_in_that_thread(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a = await joined(ws_connect, alice, room)
    root = await send(a, room, "the plan", ref="root")
    reply = await send(a, room, "@assistant thoughts?", ref="reply", parentMessageId=root["id"])
    start = await next_named(a, "stream:start")
    await frames_until_end(a, start["streamId"])
    await streams_finished()

    answer = await database_sync_to_async(Message.objects.get)(pk=start["messageId"])
    assert str(answer.parent_id) == root["id"]
    sent = ollama_emulator_settings.requests()[0]["messages"]
    assert [m["content"] for m in sent[1:]] == ["alice: the plan", "alice: @assistant thoughts?"]
    assert reply["parentMessageId"] == root["id"]


async def test_an_agent_mentioned_by_name_answers_with_its_settings(
    ws_connect, ollama_emulator_settings, room, alice
):
    agent = await database_sync_to_async(Agent.objects.create)(
        name="Code Helper", model="qwen2.5", system_prompt="You write code.", tools=[]
    )
    a = await joined(ws_connect, alice, room)

    await send(a, room, "@code helper, a loop please")
    start = await next_named(a, "stream:start")
    await frames_until_end(a, start["streamId"])
    await streams_finished()

    assert (start["agentId"], start["model"]) == (str(agent.pk), "qwen2.5")
    (sent,) = ollama_emulator_settings.requests()
    assert sent["messages"][0] == {"role": "system", "content": "You write code."}


async def test_a_mention_over_rest_streams_an_answer_into_the_room(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    b = await joined(ws_connect, bob, room)

    async with asgi_client() as client:
        response = await client.post(
            "/api/chat/messages",
            json={"sessionId": str(room.pk), "content": "@assistant over REST"},
            headers=bearer(alice),
        )
    assert response.status_code == 201, response.text
    start = await next_named(b, "stream:start")
    frames = await frames_until_end(b, start["streamId"])
    await streams_finished()

    assert frames[-1]["event"] == "stream:complete"
    (stream,) = await streams()
    assert str(stream.user_message_id) == response.json()["id"]


async def test_a_mention_without_an_at_sign_or_a_stream_request_prompt_starts_one_stream_only(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)
    await send(a, room, "assistant, are you there?", ref="plain")
    reply = await request(
        a, "stream:request", {"sessionId": str(room.pk), "prompt": "@assistant once"}, ref="ask"
    )
    assert reply["event"] == "ack"
    await frames_until_end(a, reply["data"]["streamId"])
    await streams_finished()
    await asyncio.sleep(QUIET_S)

    assert len(await streams()) == 1


async def test_a_repeated_client_id_does_not_ask_twice(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)
    first = await send(a, room, "@assistant hi", ref="one", clientId="c-1")
    again = await send(a, room, "@assistant hi", ref="two", clientId="c-1")
    start = await next_named(a, "stream:start")
    await frames_until_end(a, start["streamId"])
    await streams_finished()
    await asyncio.sleep(QUIET_S)

    assert first["id"] == again["id"]
    assert len(await streams()) == 1


# -- a stream that can't start is told to the sender alone ----------------------------------


async def test_past_the_stream_request_budget_the_sender_alone_gets_stream_error(
    ws_connect, ollama_emulator_settings, room, alice, bob, settings
):
    settings.WS_EVENT_LIMITS = {**settings.WS_EVENT_LIMITS, "stream:request": 1}
    await throttle_check(user_id=alice.pk, event="stream:request")
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    prompt = await send(a, room, "@assistant one more")
    error = await next_named(a, "stream:error")
    seen_by_bob = await frames_for(b, QUIET_S)

    assert error["streamId"] is None
    assert (error["sessionId"], error["messageId"]) == (str(room.pk), prompt["id"])
    assert error["code"] == "RATE_LIMITED" and error["retryAfter"] >= 1
    assert "message:new" in [f["event"] for f in seen_by_bob]
    assert not [f for f in seen_by_bob if f["event"].startswith("stream:")]
    assert await streams() == []
    assert len(await messages_of(room)) == 1
    assert ollama_emulator_settings.requests() == []
    with pytest.raises(DomainError):  # the mention spent the budget as a request would
        await throttle_check(user_id=alice.pk, event="stream:request")


async def test_at_the_slot_limit_the_sender_alone_gets_stream_limit(
    ws_connect, ollama_emulator_settings, room, alice, bob, settings
):
    settings.MAX_CONCURRENT_STREAMS = 0
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    async with asgi_client() as client:
        response = await client.post(
            "/api/chat/messages",
            json={"sessionId": str(room.pk), "content": "@assistant busy?"},
            headers=bearer(alice),
        )
    error = await next_named(a, "stream:error")
    seen_by_bob = await frames_for(b, QUIET_S)

    assert response.status_code == 201
    assert (error["streamId"], error["code"]) == (None, "STREAM_LIMIT")
    assert error["messageId"] == response.json()["id"]
    assert not [f for f in seen_by_bob if f["event"].startswith("stream:")]
    assert await streams() == []


async def test_ollama_down_fails_the_started_answer_as_stream_request_does(
    ws_connect, room, alice, ollama_down
):
    a = await joined(ws_connect, alice, room)
    await send(a, room, "@assistant anyone?")
    start = await next_named(a, "stream:start")
    frames = await frames_until_end(a, start["streamId"])
    await streams_finished()

    assert frames[-1]["event"] == "stream:error"
    assert frames[-1]["data"]["code"] == "LLM_UNAVAILABLE"


# -- answers can't loop: bots, webhooks and the assistant never ask -------------------------


async def test_a_bot_mentioning_the_assistant_starts_nothing(
    ws_connect, ollama_emulator_settings, staff, alice
):
    def setup():
        bot = bot_create(by=staff, username="helperbot")
        _, raw = bot_token_create(by=staff, bot_id=bot.pk)
        return raw, session_create(creator=alice, title="bots", member_ids=[bot.pk])

    raw, room = await database_sync_to_async(setup)()
    async with asgi_client() as client:
        response = await client.post(
            "/api/chat/messages",
            json={"sessionId": str(room.pk), "content": "@assistant loop forever"},
            headers={"Authorization": f"Token {raw}"},
        )
    await asyncio.sleep(QUIET_S)

    assert response.status_code == 201, response.text
    assert await streams() == []
    assert ollama_emulator_settings.requests() == []


async def test_a_webhook_post_mentioning_the_assistant_starts_nothing(
    ollama_emulator_settings, room, alice
):
    _, secret = await database_sync_to_async(
        lambda: webhook_create(user=alice, session_id=room.pk, name="ci")
    )()
    async with asgi_client() as client:
        response = await client.post(
            f"/api/chat/hooks/{secret}", json={"content": "@assistant deploy done"}
        )
    await asyncio.sleep(QUIET_S)

    assert response.status_code in (200, 201), response.text
    assert len(await messages_of(room)) == 1
    assert await streams() == []


async def test_an_answer_that_mentions_the_assistant_starts_nothing_more(
    ws_connect, ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(reply="ask @assistant again")
    a = await joined(ws_connect, alice, room)
    await send(a, room, "@assistant say it")
    start = await next_named(a, "stream:start")
    frames = await frames_until_end(a, start["streamId"])
    await streams_finished()
    await asyncio.sleep(QUIET_S)

    assert frames[-1]["data"]["content"] == "ask @assistant again"
    assert len(await streams()) == 1
    assert len(ollama_emulator_settings.requests()) == 1


async def test_a_prompt_saved_by_api_stream_is_answered_by_that_stream_only(
    ollama_emulator_settings, room, alice
):
    body = {
        "messages": [{"role": "user", "content": "@assistant hello"}],
        "model": "llama3.2",
        "chatId": str(room.pk),
    }
    async with asgi_client() as client:
        response = await client.post("/api/stream", json=body, headers=bearer(alice))
    await asyncio.sleep(QUIET_S)

    assert response.status_code == 200
    assert [m.role for m in await messages_of(room)] == ["user", "assistant"]
    assert await streams() == []
    assert len(ollama_emulator_settings.requests()) == 1


# -- names an @ would confuse: reserved usernames, agent names ------------------------------

RESERVED = {
    "code": "VALIDATION_ERROR",
    "message": "That username is reserved for the assistant.",
    "details": {"username": ["That username is reserved for the assistant."]},
}


@pytest.fixture
def helper_agent(db):
    return Agent.objects.create(name="Helper", model="llama3.2")


@pytest.mark.parametrize("username", ["assistant", "Assistant", "hELPER"])
def test_registration_refuses_assistant_and_agent_names(client_for, helper_agent, username):
    response = client_for().post(
        "/api/auth/register", {"username": username, "password": "pw-Secret-123"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == RESERVED
    assert client_for().post(
        "/api/auth/register", {"username": "assistant2", "password": "pw-Secret-123"},
        format="json",
    ).status_code == 201  # fmt: skip


def test_bot_creation_refuses_reserved_names_and_a_webhook_named_so_gets_another(
    client_for, staff, alice, helper_agent
):
    refused = client_for(staff).post("/api/auth/bots", {"username": "helper"}, format="json")
    room = session_create(creator=alice, title="hooks")
    hook, _ = webhook_create(user=alice, session_id=room.pk, name="Assistant")

    assert refused.status_code == 400 and refused.json()["message"] == RESERVED["message"]
    assert hook.bot.username == "assistant-2"


def test_the_admin_refuses_reserved_usernames_for_users_and_new_bots(client, make_user):
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)

    user_form = client.post(
        "/admin/accounts/user/add/",
        {"username": "ASSISTANT", "password1": "pw-Secret-123", "password2": "pw-Secret-123",
         "usable_password": "true"},
    )  # fmt: skip
    bot_form = client.post(
        "/admin/accounts/bottoken/add/", {"name": "ci", "new_bot_username": "assistant"}
    )

    assert user_form.status_code == 200 and RESERVED["message"] in user_form.text
    assert bot_form.status_code == 200 and RESERVED["message"] in bot_form.text
    assert not type(admin_user).objects.filter(username__iexact="assistant").exists()


@pytest.mark.parametrize("name", ["assistant", "ALICE"])
def test_an_agent_can_t_take_a_username_or_assistant(client_for, staff, alice, name):
    client = client_for(staff)
    created = client.post("/api/llm/agents", {"name": name, "model": "llama3.2"}, format="json")
    agent = Agent.objects.create(name="fine", model="llama3.2")
    renamed = client.patch(f"/api/llm/agents/{agent.pk}", {"name": name}, format="json")

    assert created.status_code == 400 and created.json()["code"] == "VALIDATION_ERROR"
    assert renamed.status_code == 400 and "name" in renamed.json()["details"]
    assert Agent.objects.get(pk=agent.pk).name == "fine"
