"""The ``/ws/ai/`` gateway through the whole ASGI stack, against the Ollama emulator: seed
001's ``chat:start`` / ``chat:stop`` and seed 000's ``prompt``, conversations and who owns
them, history as context, saving, stopping, failures, and the envelope shared with
``/ws/chat/``."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import ChatSession, Membership, Message
from chat.services.sessions import session_create
from chat.throttles import throttle_check
from llm import ai_events
from llm.models import Stream
from llm.system_prompts import ONE_TO_ONE

from .streams import streams_finished, streams_stopped, until

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW = {"num_tokens": 400, "delay_ms": 20}
CHAT_ENDINGS = ("chat:end", "chat:stopped", "chat:error")


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


async def send(ws, event: str, data: dict, ref="r") -> None:
    await ws.send_json_to({"event": event, "data": data, "ref": ref})


def named(frames, event: str) -> list[dict]:
    return [f for f in frames if f["event"] == event]


def reply(frames, ref="r") -> dict:
    (found,) = [f for f in frames if f["event"] in ("ack", "error") and f.get("ref") == ref]
    return found


@database_sync_to_async
def conversation_of(alice) -> ChatSession:
    return ChatSession.objects.get(memberships__user=alice)


@database_sync_to_async
def messages_in(session_id) -> list[Message]:
    return list(Message.objects.filter(session_id=session_id).order_by("seq"))


@database_sync_to_async
def conversation(user, title="mine") -> ChatSession:
    return session_create(creator=user, title=title)


# -- chat:start (seed 001) -------------------------------------------------------------------


async def test_chat_start_makes_a_conversation_and_streams_the_answer(
    ai_connect, ollama_emulator_settings, alice
):
    ollama_emulator_settings.configure(reply="Quantum bits are both.", delay_ms=5)
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "Explain quantum computing", "userId": "ignored"})
    frames = await until(ws, *CHAT_ENDINGS)
    if not any(f["event"] == "ack" for f in frames):
        frames += await until(ws, "ack")

    ack = reply(frames)["data"]
    conversation_id = ack["conversationId"]
    (made,) = named(frames, "chat:conversation")
    assert made["data"] == ai_events.chat_conversation(conversation_id=conversation_id)
    (user_message,) = named(frames, "chat:user-message")
    assert user_message["data"] == ai_events.chat_user_message(
        message_id=ack["userMessageId"], content="Explain quantum computing"
    )
    events = [f["event"] for f in frames if f["event"] != "ack"]
    assert events[:2] == ["chat:conversation", "chat:user-message"]
    assert events[-1] == "chat:end" and set(events[2:-1]) == {"chat:message"}
    parts = named(frames, "chat:message")
    assert all(p["data"] == ai_events.chat_message(content=p["data"]["content"]) for p in parts)
    assert "".join(p["data"]["content"] for p in parts) == "Quantum bits are both."
    (end,) = named(frames, "chat:end")
    assert end["data"] == ai_events.chat_end(
        message_id=ack["messageId"],
        conversation_id=conversation_id,
        total_tokens=4,
        prompt_tokens=end["data"]["promptTokens"],
        model="llama3.2",
        finish_reason="stop",
    )
    await streams_finished()
    session = await conversation_of(alice)
    assert str(session.pk) == conversation_id and session.title == "Explain quantum computing"
    prompt, answer = await messages_in(conversation_id)
    assert (prompt.role, prompt.author_id, str(prompt.pk)) == (
        "user",
        alice.pk,
        ack["userMessageId"],
    )
    assert (answer.role, answer.content) == ("assistant", "Quantum bits are both.")
    assert str(answer.pk) == ack["messageId"]
    assert await database_sync_to_async(Stream.objects.filter(pk=ack["streamId"]).exists)()


async def test_a_conversation_goes_on_with_its_history_as_context(
    ai_connect, ollama_emulator_settings, alice
):
    ws = await ai_connect(alice)
    await send(ws, "chat:start", {"message": "first question"})
    first = await until(ws, *CHAT_ENDINGS)
    conversation_id = named(first, "chat:conversation")[0]["data"]["conversationId"]
    await streams_finished()
    ollama_emulator_settings.app.clear_log()

    await send(
        ws,
        "chat:start",
        {"message": "second question", "conversationId": conversation_id, "model": "qwen2.5",
         "maxTokens": 50, "temperature": 0.3},
        ref="again",
    )  # fmt: skip
    second = await until(ws, *CHAT_ENDINGS)

    assert named(second, "chat:conversation") == []
    assert second[-1]["event"] == "chat:end"
    (request,) = ollama_emulator_settings.requests()
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", ONE_TO_ONE),
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second question"),
    ]
    assert request["model"] == "qwen2.5"
    assert request["options"]["num_predict"] == 50
    assert request["options"]["temperature"] == 0.3


async def test_chat_stop_stops_the_answer_and_the_ollama_request(
    ai_connect, ollama_emulator_settings, alice
):
    ollama_emulator_settings.configure(**SLOW)
    ws = await ai_connect(alice)
    await send(ws, "chat:start", {"message": "talk a lot"})
    frames = await until(ws, "chat:message")
    frames += await until(ws, "chat:message")

    await send(ws, "chat:stop", {}, ref="stop")
    frames += await until(ws, *CHAT_ENDINGS)
    if not any(f.get("ref") == "stop" for f in frames):
        frames += await until(ws, "ack")

    ack = reply(frames)["data"]
    assert reply(frames, "stop")["data"]["stopRequested"] is True
    (stopped,) = named(frames, "chat:stopped")
    assert stopped["data"] == ai_events.chat_stopped(
        message_id=ack["messageId"], conversation_id=ack["conversationId"]
    )
    gone = await ollama_emulator_settings.await_event("disconnect", within=5)
    assert gone["tokens_sent"] < SLOW["num_tokens"]
    await streams_finished()
    _, answer = await messages_in(ack["conversationId"])
    kept = "".join(f["data"]["content"] for f in named(frames, "chat:message"))
    assert answer.metadata["status"] == "stopped" and answer.content.startswith(kept)


async def test_chat_stop_with_nothing_running_changes_nothing(ai_connect, alice):
    ws = await ai_connect(alice)

    await send(ws, "chat:stop", {})

    assert (await until(ws, "ack"))[-1]["data"] == {"stopRequested": False}


async def test_one_answer_at_a_time_per_connection(ai_connect, ollama_emulator_settings, alice):
    ollama_emulator_settings.configure(**SLOW)
    ws = await ai_connect(alice)
    await send(ws, "chat:start", {"message": "one"})
    await until(ws, "chat:message")

    await send(ws, "chat:start", {"message": "two"}, ref="two")
    frames = await until(ws, "chat:error")
    if not any(f.get("ref") == "two" for f in frames):
        frames += await until(ws, "error")

    assert reply(frames, "two")["data"]["code"] == "STREAM_LIMIT"
    assert named(frames, "chat:error")[-1]["data"]["code"] == "STREAM_LIMIT"


@pytest.mark.parametrize("whose", ["bob's", "a shared room", "unknown"])
async def test_chat_start_in_a_conversation_not_yours_is_refused(
    ai_connect, ollama_emulator_settings, alice, bob, whose
):
    if whose == "bob's":
        target, code = str((await conversation(bob)).pk), "FORBIDDEN"
    elif whose == "a shared room":
        room = await database_sync_to_async(
            lambda: session_create(creator=alice, title="room", member_ids=[bob.pk])
        )()
        target, code = str(room.pk), "FORBIDDEN"
    else:
        target, code = "6f1c1b2e-1111-4a4a-8b8b-123456789abc", "NOT_FOUND"
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "hi", "conversationId": target})
    frames = await until(ws, "chat:error")

    error, chat_error = frames
    assert (error["event"], error["ref"], error["data"]["code"]) == ("error", "r", code)
    assert chat_error["data"] == ai_events.chat_error(message=error["data"]["message"], code=code)
    assert ollama_emulator_settings.requests() == []


async def test_an_invalid_chat_start_is_a_validation_error(ai_connect, alice):
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "   "})
    error, chat_error = await until(ws, "chat:error")

    assert error["data"]["code"] == chat_error["data"]["code"] == "VALIDATION_ERROR"
    assert "message" in error["data"]["details"]
    assert await database_sync_to_async(ChatSession.objects.count)() == 0


async def test_an_unknown_model_is_a_chat_error(ai_connect, ollama_emulator_settings, alice):
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "hi", "model": "nope"})
    frames = await until(ws, "chat:error")

    assert reply(frames)["event"] == "ack"
    assert frames[-1]["data"]["code"] == "INVALID_MODEL"


async def test_a_refused_start_leaves_no_empty_conversation(
    ai_connect, ollama_emulator_settings, alice, settings
):
    settings.MAX_CONCURRENT_STREAMS = 0
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "hi"})
    error, _ = await until(ws, "chat:error")

    assert error["data"]["code"] == "STREAM_LIMIT"
    assert await database_sync_to_async(ChatSession.objects.count)() == 0


async def test_the_answer_goes_on_and_is_saved_when_the_socket_closes(
    ai_connect, ollama_emulator_settings, alice
):
    ollama_emulator_settings.configure(num_tokens=30, delay_ms=10)
    ws = await ai_connect(alice)
    await send(ws, "chat:start", {"message": "go"})
    frames = await until(ws, "chat:message")
    conversation_id = named(frames, "chat:conversation")[0]["data"]["conversationId"]

    await ws.disconnect()
    await streams_finished()

    _, answer = await messages_in(conversation_id)
    assert answer.metadata["status"] == "completed" and len(answer.content.split()) == 30


# -- prompt (seed 000) -------------------------------------------------------------------------


async def test_prompt_streams_bare_chunks_then_ai_complete(
    ai_connect, ollama_emulator_settings, alice
):
    ollama_emulator_settings.configure(reply="Threads are owned.")
    thread = await conversation(alice)
    ws = await ai_connect(alice)

    await send(
        ws,
        "prompt",
        {"thread": str(thread.pk), "message": {"role": "user", "content": "who owns it?"},
         "model": "llama3.2"},
    )  # fmt: skip
    frames = await until(ws, "ai_complete", "error")
    if not any(f["event"] == "ack" for f in frames):
        frames += await until(ws, "ack")

    ack = reply(frames)["data"]
    chunks = named(frames, "ai_chunk")
    assert all(isinstance(c["data"], str) for c in chunks)
    assert "".join(c["data"] for c in chunks) == "Threads are owned."
    (complete,) = named(frames, "ai_complete")
    assert complete["data"] == ai_events.ai_complete(
        thread=thread.pk, message_id=ack["messageId"], finish_reason="stop"
    )
    await streams_finished()
    prompt, answer = await messages_in(thread.pk)
    assert (prompt.content, answer.content) == ("who owns it?", "Threads are owned.")


async def test_prompt_in_someone_elses_thread_is_an_error_with_status_403(
    ai_connect, ollama_emulator_settings, alice, bob
):
    thread = await conversation(bob)
    ws = await ai_connect(alice)

    await send(ws, "prompt", {"thread": str(thread.pk), "message": {"content": "mine now"}})
    (error,) = await until(ws, "error")

    assert error["ref"] == "r"
    assert error["data"]["status_code"] == 403 and error["data"]["code"] == "FORBIDDEN"
    assert error["data"]["message"]
    assert await messages_in(thread.pk) == []


async def test_prompt_failing_in_ollama_is_an_error_with_a_status_code(
    ai_connect, ollama_emulator_settings, alice
):
    thread = await conversation(alice)
    ws = await ai_connect(alice)

    await send(
        ws, "prompt", {"thread": str(thread.pk), "message": {"content": "hi"}, "model": "nope"}
    )
    frames = await until(ws, "ai_complete", "error")
    while frames[-1].get("ref") == "r":
        frames += await until(ws, "ai_complete", "error")

    failure = frames[-1]
    assert failure["event"] == "error" and failure.get("ref") is None
    assert failure["data"] == ai_events.prompt_error(
        message=failure["data"]["message"], code="INVALID_MODEL"
    )
    assert failure["data"]["status_code"] == 400


# -- the envelope shared with /ws/chat/ ----------------------------------------------------------


async def test_without_credentials_it_is_unauthorized_then_4401(ai_connect):
    ws = await ai_connect(expect_success=False)

    frame = await ws.receive_json_from(timeout=5)

    assert frame["event"] == "error" and frame["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "BAD_FRAME"),
        ('{"event": "session:join", "data": {}, "ref": 1}', "UNKNOWN_EVENT"),
        ('{"event": "prompt", "data": {"thread": 5}, "ref": 2}', "VALIDATION_ERROR"),
    ],
)
async def test_bad_frames_get_the_same_errors_as_the_chat_gateway(ai_connect, alice, raw, code):
    ws = await ai_connect(alice)

    await ws.send_to(text_data=raw)
    (error,) = await until(ws, "error")

    assert error["data"]["code"] == code
    assert await ws.receive_nothing(timeout=0.2)


async def test_ping_is_acked(ai_connect, alice):
    ws = await ai_connect(alice)

    await send(ws, "ping", {}, ref={"n": 1})

    (ack,) = await until(ws, "ack")
    assert ack["ref"] == {"n": 1} and ack["data"]["serverTime"].endswith("Z")


async def test_llm_requests_share_the_stream_request_budget(ai_connect, alice):
    for _ in range(10):
        await throttle_check(user_id=alice.pk, event="stream:request")
    ws = await ai_connect(alice)

    await send(ws, "chat:start", {"message": "one more"})
    error, chat_error = await until(ws, "chat:error")

    assert error["data"]["code"] == "RATE_LIMITED" and error["data"]["retryAfter"] >= 1
    assert chat_error["data"]["code"] == "RATE_LIMITED"


async def test_a_ban_closes_ai_sockets_too(ai_connect, alice):
    from accounts.services import user_deactivate

    ws = await ai_connect(alice)

    await database_sync_to_async(user_deactivate)(user=alice)

    frame = await ws.receive_json_from(timeout=5)
    assert frame["event"] == "error" and frame["data"]["code"] == "FORBIDDEN"
    assert (await ws.receive_output(timeout=5))["code"] == 4403


async def test_a_conversation_has_only_its_human_as_member(
    ai_connect, ollama_emulator_settings, alice
):
    ws = await ai_connect(alice)
    await send(ws, "chat:start", {"message": "hi"})
    frames = await until(ws, *CHAT_ENDINGS)
    conversation_id = named(frames, "chat:conversation")[0]["data"]["conversationId"]

    members = await database_sync_to_async(
        lambda: list(
            Membership.objects.filter(session_id=conversation_id).values_list("user_id", "role")
        )
    )()

    assert members == [(alice.pk, "owner")]
