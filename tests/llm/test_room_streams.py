"""Answers streamed into a room over the /ws/chat/ gateway, against the Ollama emulator:
what every member sees, stopping, leaving, joining mid-stream, failures and the limit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from redis.asyncio import Redis

from chat.models import ChatSession, Message
from chat.services.sessions import session_create
from llm import event_types
from llm.models import Agent, Stream
from llm.services import stream_records
from llm.services.room_stream import running
from llm.services.streams import stream_request
from llm.stream_state import get_stream_state
from llm.system_prompts import GROUP_CHAT

from ..chat.conftest import request
from .streams import (
    AMBIENT_EVENTS,
    WITHIN_S,
    chunks_of,
    frames_arriving,
    frames_until_end,
    receive,
    request_seeing,
    streams_finished,
    streams_stopped,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

DISCONNECT_WITHIN_S = 5
SLOW = {"num_tokens": 400, "delay_ms": 20}


@pytest.fixture
async def room(alice, bob):
    return await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


async def joined(ws_connect, user, room):
    ws = await ws_connect(user)
    reply = await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="join")
    assert reply["event"] == "ack", reply
    return ws


async def ask(ws, room, prompt="question?", **extra) -> dict:
    """Request a stream; frames that overtook the ack are kept for the next read."""
    reply, early = await request_seeing(
        ws, "stream:request", {"sessionId": str(room.pk), "prompt": prompt, **extra}, ref="ask"
    )
    assert reply["event"] == "ack", reply
    ws.__dict__.setdefault("pending", []).extend(early)
    return reply["data"]


async def until_chunk(ws, stream_id: str, index: int) -> list[dict]:
    """Frames up to the chunk numbered ``index``."""
    frames = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = await receive(ws)
            frames.append(frame)
            data = frame["data"]
            chunk = frame["event"] == "stream:chunk" and data["streamId"] == stream_id
            if chunk and data["index"] >= index:
                return frames


@database_sync_to_async
def saved(message_id) -> Message:
    return Message.objects.get(pk=message_id)


@database_sync_to_async
def stream_row(stream_id) -> Stream:
    return Stream.objects.select_related("stopped_by").get(pk=stream_id)


@database_sync_to_async
def message_count(room) -> int:
    return Message.objects.filter(session=room).count()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- the answer reaches every member and is saved -----------------------------------------


async def test_two_listeners_see_the_same_answer_and_it_is_saved(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(
        reply="The answer is forty two, of course.", delay_ms=5, prompt_eval_count=9
    )
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    ack = await ask(a, room)
    stream_id, message_id = ack["streamId"], ack["messageId"]
    seen_by_a = await frames_until_end(a, stream_id)
    seen_by_b = await frames_until_end(b, stream_id)
    await streams_finished()

    message = await saved(message_id)
    assert message.content == "The answer is forty two, of course."
    for frames in (seen_by_a, seen_by_b):
        chunks = chunks_of(frames, stream_id)
        assert "".join(c["delta"] for c in chunks) == message.content
        assert [c["index"] for c in chunks] == list(range(len(chunks)))
        assert [c["isComplete"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert "content" not in chunks[0] and chunks[-1]["content"] == message.content
        assert frames[-1]["event"] == "stream:complete"
        assert [f["event"] for f in frames].count("stream:start") == 1
    events = [f["event"] for f in seen_by_b]
    assert events.index("stream:start") < events.index("stream:chunk")
    (start,) = [f for f in seen_by_b if f["event"] == "stream:start"]
    assert start["data"] == event_types.stream_start(
        stream_id=stream_id, session_id=room.pk, message_id=message_id, agent_id=None,
        model="llama3.2", requested_by={"id": alice.pk, "username": "alice"},
    )  # fmt: skip
    complete = seen_by_b[-1]["data"]
    assert complete == event_types.stream_complete(
        stream_id=stream_id, session_id=room.pk, message_id=message_id, content=message.content,
        tokens=7, prompt_tokens=9, finish_reason="stop", model="llama3.2",
        duration_ms=complete["durationMs"],
    )  # fmt: skip
    assert (message.role, message.author_id, message.tokens) == ("assistant", None, 7)
    assert message.metadata["status"] == "completed" and message.metadata["streamId"] == stream_id
    assert not message.is_edited
    row = await stream_row(stream_id)
    assert (row.status, row.tokens_generated, row.prompt_tokens) == ("completed", 7, 9)
    assert row.chunks_sent == len(chunks_of(seen_by_a)) and row.bytes_sent > 0


async def test_the_prompt_and_the_answer_are_durable_messages_replayed_by_seq(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room, "hello model")
    await frames_until_end(a, ack["streamId"])
    await streams_finished()

    b = await ws_connect(bob)
    replay = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})

    missed = [(f["seq"], f["event"], f["data"]["message"]) for f in replay["data"]["missed"]]
    assert [(seq, event) for seq, event, _ in missed] == [
        (1, "message:new"),
        (2, "message:new"),
        (3, "message:edited"),
    ]
    prompt, placeholder, final = (m for _, _, m in missed)
    assert (prompt["id"], prompt["role"], prompt["content"]) == (
        ack["userMessageId"], "user", "hello model",
    )  # fmt: skip
    assert (placeholder["id"], placeholder["role"], placeholder["content"]) == (
        ack["messageId"], "assistant", "",
    )  # fmt: skip
    # Who asked and the model are stored from the start: a reload mid-answer shows them.
    assert placeholder["metadata"] == {
        "streamId": ack["streamId"],
        "status": "streaming",
        "model": "llama3.2",
        "requestedBy": {"id": alice.pk, "username": "alice"},
        "promptId": ack["userMessageId"],
    }
    assert final["id"] == ack["messageId"] and final["content"] == "Echo: alice: hello model"
    assert final["seq"] == 2 and final["isEdited"] is False
    assert final["metadata"]["status"] == "completed"
    assert replay["data"]["activeStreams"] == []


async def test_a_tool_call_is_broadcast_and_kept_in_the_message(
    ws_connect, ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}]
    )
    a = await joined(ws_connect, alice, room)

    ack = await ask(a, room, "6 times 7?")
    frames = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    (tool,) = [f["data"] for f in frames if f["event"] == "stream:tool"]
    assert tool == event_types.stream_tool(
        stream_id=ack["streamId"], session_id=room.pk, message_id=ack["messageId"],
        name="calculator", args={"expression": "6*7"}, result="42",
    )  # fmt: skip
    message = await saved(ack["messageId"])
    assert message.content == "Tool result: 42"
    assert message.metadata["toolCalls"] == [
        {"name": "calculator", "args": {"expression": "6*7"}, "result": "42"}
    ]


async def test_an_agent_gives_the_model_its_prompt_settings_and_tools(
    ws_connect, ollama_emulator_settings, room, alice
):
    agent = await database_sync_to_async(Agent.objects.create)(
        name="helper", model="qwen2.5", system_prompt="You help.", temperature=0.2,
        max_tokens=64, tools=["calculator"],
    )  # fmt: skip
    a = await joined(ws_connect, alice, room)

    ack = await ask(a, room, agentId=str(agent.pk), config={"maxTokens": 32})
    frames = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    (sent,) = ollama_emulator_settings.requests()
    assert sent["model"] == "qwen2.5"
    assert sent["messages"][0] == {"role": "system", "content": "You help."}
    assert (sent["options"]["temperature"], sent["options"]["num_predict"]) == (0.2, 32)
    assert [t["function"]["name"] for t in sent["tools"]] == ["calculator"]
    start = next(f["data"] for f in frames if f["event"] == "stream:start")
    assert (start["agentId"], start["model"]) == (str(agent.pk), "qwen2.5")
    assert (await saved(ack["messageId"])).agent_id == agent.pk


async def test_an_answer_in_a_thread_stays_in_the_thread_and_sees_only_it(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)
    await request(a, "message:send", {"sessionId": str(room.pk), "content": "elsewhere"}, ref="m")
    root = await request(a, "message:send", {"sessionId": str(room.pk), "content": "root"}, ref="r")

    ack = await ask(a, room, "in the thread", parentMessageId=root["data"]["id"])
    await frames_until_end(a, ack["streamId"])
    await streams_finished()

    prompt, answer = await saved(ack["userMessageId"]), await saved(ack["messageId"])
    assert str(prompt.parent_id) == str(answer.parent_id) == root["data"]["id"]
    (sent,) = ollama_emulator_settings.requests()
    assert [m["content"] for m in sent["messages"]] == [
        GROUP_CHAT,
        "alice: root",
        "alice: in the thread",
    ]


async def test_status_and_metrics_describe_the_finished_stream(
    ws_connect, ollama_emulator_settings, room, alice, bob, client_for
):
    ollama_emulator_settings.configure(tokens=["a", "b", "c"], prompt_eval_count=11)
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)
    frames = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    def fetch(endpoint):
        return client_for(bob).get(f"/api/chat/streams/{ack['streamId']}/{endpoint}").json()

    status = await database_sync_to_async(fetch)("status")
    metrics = await database_sync_to_async(fetch)("metrics")

    assert (status["status"], status["progress"], status["tokensGenerated"]) == (
        "completed",
        1.0,
        3,
    )
    assert (status["messageId"], status["model"]) == (ack["messageId"], "llama3.2")
    assert (metrics["totalTokens"], metrics["promptTokens"], metrics["errors"]) == (3, 11, 0)
    assert metrics["chunksSent"] == len(chunks_of(frames)) and metrics["bandwidth"] > 0
    assert metrics["latency"] is not None and metrics["durationMs"] >= metrics["latency"]


# -- stopping -------------------------------------------------------------------------------


async def test_another_member_stops_the_stream_and_the_ollama_request_closes(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(**SLOW)
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    ack = await ask(a, room)
    stream_id = ack["streamId"]
    before = await until_chunk(a, stream_id, 2)

    stop = await request(b, "stream:stop", {"streamId": stream_id}, ref="stop")
    after = await frames_until_end(a, stream_id)
    await streams_finished()

    assert stop["event"] == "ack" and stop["data"]["stopRequested"] is True
    stopped = after[-1]
    assert stopped["event"] == "stream:stopped"
    assert stopped["data"]["stoppedBy"] == {"id": bob.pk, "username": "bob"}
    deltas = "".join(c["delta"] for c in chunks_of(before + after, stream_id))
    assert stopped["data"]["content"] == deltas and deltas
    message = await saved(ack["messageId"])
    assert message.content == deltas and message.metadata["status"] == "stopped"
    assert message.metadata["stoppedBy"] == {"id": bob.pk, "username": "bob"}
    row = await stream_row(stream_id)
    assert (row.status, row.stopped_by_id) == ("stopped", bob.pk)
    gone = await ollama_emulator_settings.await_event("disconnect", within=DISCONNECT_WITHIN_S)
    assert gone["tokens_sent"] < SLOW["num_tokens"]
    assert ollama_emulator_settings.events("complete") == []
    # Only a presence or typing aggregate may still come (bob joined a moment ago).
    late = await frames_arriving(a, 0.5)
    assert all(f["event"] in AMBIENT_EVENTS for f in late), "nothing after stream:stopped"


async def test_a_stop_request_in_the_shared_state_stops_the_stream_from_any_worker(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    """What ``stream:stop`` on another worker leaves for the worker running the stream."""
    ollama_emulator_settings.configure(**SLOW)
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)
    await until_chunk(a, ack["streamId"], 1)

    await get_stream_state().stream_stop_request(
        ack["streamId"], {"by": {"id": bob.pk, "username": "bob"}}, ttl=60
    )
    frames = await frames_until_end(a, ack["streamId"])

    assert frames[-1]["event"] == "stream:stopped"
    assert frames[-1]["data"]["stoppedBy"]["id"] == bob.pk
    await ollama_emulator_settings.await_event("disconnect", within=DISCONNECT_WITHIN_S)


async def test_stopping_needs_membership_and_an_ended_stream_stays_as_it_is(
    ws_connect, ollama_emulator_settings, room, alice, carol
):
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)
    await frames_until_end(a, ack["streamId"])
    await streams_finished()
    c = await ws_connect(carol)

    outsider = await request(c, "stream:stop", {"streamId": ack["streamId"]})
    unknown = await request(a, "stream:stop", {"streamId": "00000000-0000-0000-0000-000000000000"})
    late = await request(a, "stream:stop", {"streamId": ack["streamId"]})

    assert outsider["data"]["code"] == "FORBIDDEN"
    assert unknown["data"]["code"] == "NOT_FOUND"
    assert late["data"] == {
        "streamId": ack["streamId"],
        "status": "completed",
        "stopRequested": False,
    }


# -- the requester leaves, someone joins ------------------------------------------------------


async def test_the_stream_goes_on_when_its_requester_disconnects(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(num_tokens=30, delay_ms=10)
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    ack = await ask(a, room)

    await a.disconnect()
    frames = await frames_until_end(b, ack["streamId"])
    await streams_finished()

    assert frames[-1]["event"] == "stream:complete"
    message = await saved(ack["messageId"])
    assert len(message.content.split()) == 30 and message.metadata["status"] == "completed"
    assert ollama_emulator_settings.events("disconnect") == []


@contextlib.asynccontextmanager
async def another_writer_holding(room):
    """Another transaction holds the room's row, as a concurrent send would, until the
    ``threading.Event`` it yields is set (or the block ends): a stream request waits to be
    stored meanwhile."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            ChatSession.objects.select_for_update().get(pk=room.pk)
            held.set()
            release.wait(WITHIN_S)
        connection.close()

    writer = threading.Thread(target=hold)
    writer.start()
    await asyncio.to_thread(held.wait, WITHIN_S)
    try:
        yield release
    finally:
        release.set()
        await asyncio.to_thread(writer.join)


async def test_a_request_whose_requester_goes_away_before_the_ack_still_runs_to_its_end(
    ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(num_tokens=5, delay_ms=5)
    async with another_writer_holding(room) as release:
        requesting = asyncio.create_task(
            stream_request(user=alice, session_id=room.pk, prompt="still there?")
        )
        # The request waits to be stored.
        await asyncio.sleep(0.3)

        requesting.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await requesting
    # The answer begins once the request is stored.
    await ollama_emulator_settings.await_event("complete", within=WITHIN_S)
    await streams_finished()

    stream = await database_sync_to_async(Stream.objects.get)(session_id=room.pk)
    assert stream.status == Stream.Status.COMPLETED
    answer = await saved(stream.message_id)
    assert len(answer.content.split()) == 5 and answer.metadata["status"] == "completed"
    assert await get_stream_state().stream_slot_acquire("next", limit=1, ttl=5), "its slot is free"


@pytest.mark.skipif(not settings.REDIS_URL, reason="pauses Redis (the embedded state is memory)")
async def test_a_slot_slower_than_the_request_s_reading_never_holds_the_database_thread(
    ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(num_tokens=3, delay_ms=0)
    redis = Redis.from_url(settings.REDIS_URL)
    # Redis holds every write (the slot's script among them) for a second.
    await redis.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
    try:
        requesting = asyncio.create_task(
            stream_request(user=alice, session_id=room.pk, prompt="anyone?")
        )
        await asyncio.sleep(0.05)

        # The one thread every connection of the worker shares is free meanwhile.
        count = await asyncio.wait_for(message_count(room), 0.5)
        ack = await requesting
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()
    await streams_finished()

    assert count == 0, "nothing is stored before the slot is taken"
    assert (await stream_row(ack["streamId"])).status == Stream.Status.COMPLETED
    assert (await saved(ack["messageId"])).content


async def test_joining_mid_stream_continues_exactly_where_the_snapshot_ends(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(**SLOW)
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)
    stream_id = ack["streamId"]
    await until_chunk(a, stream_id, 3)

    b = await ws_connect(bob)
    reply, before_reply = await request_seeing(b, "session:join", {"sessionId": str(room.pk)})
    (active,) = reply["data"]["activeStreams"]
    live = await until_chunk(b, stream_id, active["index"] + 3)
    await request(a, "stream:stop", {"streamId": stream_id}, ref="stop")
    rest = await frames_until_end(b, stream_id)
    await streams_finished()

    assert (active["streamId"], active["messageId"]) == (stream_id, ack["messageId"])
    assert active["index"] >= 3 and active["content"] and active["tokens"] >= active["index"]
    # The client keeps the chunks after the snapshot's index: they follow on, none missing.
    after = [
        c for c in chunks_of(before_reply + live + rest, stream_id) if c["index"] > active["index"]
    ]
    assert [c["index"] for c in after] == list(
        range(active["index"] + 1, active["index"] + 1 + len(after))
    )
    final = rest[-1]["data"]["content"]
    assert active["content"] + "".join(c["delta"] for c in after) == final
    assert (await saved(ack["messageId"])).content == final


async def test_active_streams_is_empty_before_the_first_chunk_index_minus_one(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(first_delay_ms=60_000)
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)

    b = await ws_connect(bob)
    reply = await request(b, "session:join", {"sessionId": str(room.pk)})

    assert reply["data"]["activeStreams"] == [
        event_types.active_stream(
            stream_id=ack["streamId"],
            message_id=ack["messageId"],
            content="",
            index=-1,
            tokens=0,
            model="llama3.2",
            requested_by={"id": alice.pk, "username": "alice"},
        )
    ]


# -- failures and limits ------------------------------------------------------------------------


async def test_an_unknown_model_fails_with_invalid_model_and_the_message_keeps_it(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)

    ack = await ask(a, room, config={"model": "no-such-model"})
    frames = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    error = frames[-1]
    assert error["event"] == "stream:error"
    assert error["data"]["code"] == "INVALID_MODEL" and "no-such-model" in error["data"]["message"]
    message = await saved(ack["messageId"])
    assert (message.content, message.metadata["status"]) == ("", "failed")
    assert message.metadata["errorCode"] == "INVALID_MODEL"
    # The words the room was told, kept for a reload.
    assert message.metadata["errorMessage"] == error["data"]["message"]
    row = await stream_row(ack["streamId"])
    assert (row.status, row.error_code, row.errors) == ("failed", "INVALID_MODEL", 1)
    assert row.error_message == error["data"]["message"]


async def test_a_failure_mid_answer_keeps_the_part_so_far(
    ws_connect, ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(
        tokens=["one", " two", " three"], failure="cut", fail_after=2
    )
    a = await joined(ws_connect, alice, room)

    ack = await ask(a, room)
    frames = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    assert frames[-1]["data"]["code"] == "LLM_UNAVAILABLE"
    assert "mid-answer" in frames[-1]["data"]["message"]
    assert "".join(c["delta"] for c in chunks_of(frames)) == "one two"
    message = await saved(ack["messageId"])
    assert (message.content, message.metadata["status"]) == ("one two", "failed")


async def test_ollama_down_is_llm_unavailable_and_people_can_still_talk(
    ws_connect, room, alice, bob, settings
):
    settings.OLLAMA_URL = closed_port_url()
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    ack = await ask(a, room)
    frames = await frames_until_end(a, ack["streamId"])
    sent = await request(b, "message:send", {"sessionId": str(room.pk), "content": "still here"})
    await streams_finished()

    assert frames[-1]["event"] == "stream:error"
    assert frames[-1]["data"]["code"] == "LLM_UNAVAILABLE"
    assert sent["event"] == "ack" and sent["data"]["content"] == "still here"


async def test_past_max_concurrent_streams_a_request_gets_stream_limit(
    ws_connect, ollama_emulator_settings, room, alice, settings
):
    settings.MAX_CONCURRENT_STREAMS = 1
    ollama_emulator_settings.configure(**SLOW)
    a = await joined(ws_connect, alice, room)
    first = await ask(a, room)
    count = await message_count(room)

    refused = await request(
        a, "stream:request", {"sessionId": str(room.pk), "prompt": "another"}, ref="x"
    )
    assert refused["event"] == "error" and refused["data"]["code"] == "STREAM_LIMIT"
    assert await message_count(room) == count, "a refused request saves nothing"

    await request(a, "stream:stop", {"streamId": first["streamId"]}, ref="stop")
    await frames_until_end(a, first["streamId"])
    await streams_finished()
    ollama_emulator_settings.configure(num_tokens=3, delay_ms=0)
    again = await ask(a, room, "now?")
    assert (await frames_until_end(a, again["streamId"]))[-1]["event"] == "stream:complete"


async def test_a_refused_request_gives_back_the_slot_it_took(
    ws_connect, ollama_emulator_settings, room, alice, carol, settings
):
    settings.MAX_CONCURRENT_STREAMS = 1
    outsider = await ws_connect(carol)

    refused = await request(
        outsider, "stream:request", {"sessionId": str(room.pk), "prompt": "hi"}, ref="x"
    )
    a = await joined(ws_connect, alice, room)
    answered = await ask(a, room)

    assert refused["event"] == "error" and refused["data"]["code"] == "FORBIDDEN"
    assert (await frames_until_end(a, answered["streamId"]))[-1]["event"] == "stream:complete"


async def test_at_the_limit_a_wrong_request_is_refused_as_wrong(
    ws_connect, ollama_emulator_settings, room, alice, carol, settings
):
    settings.MAX_CONCURRENT_STREAMS = 1
    ollama_emulator_settings.configure(**SLOW)
    a = await joined(ws_connect, alice, room)
    first = await ask(a, room)
    outsider = await ws_connect(carol)

    refused = await request(
        outsider, "stream:request", {"sessionId": str(room.pk), "prompt": "hi"}, ref="x"
    )

    assert refused["event"] == "error" and refused["data"]["code"] == "FORBIDDEN"
    await request(a, "stream:stop", {"streamId": first["streamId"]}, ref="stop")
    await frames_until_end(a, first["streamId"])


@pytest.mark.parametrize(
    "data",
    [
        {"sessionId": None, "prompt": "x"},
        {"prompt": "   "},
        {"prompt": "x", "config": {"temperature": 5}},
        {"prompt": "x", "config": {"maxTokens": 0}},
        {"prompt": "x", "agentId": "00000000-0000-0000-0000-000000000000"},
    ],
)
async def test_bad_requests_are_refused_before_anything_is_saved(
    ws_connect, ollama_emulator_settings, room, alice, data
):
    a = await ws_connect(alice)

    reply = await request(a, "stream:request", {"sessionId": str(room.pk), **data})

    assert reply["data"]["code"] == "VALIDATION_ERROR"
    assert await message_count(room) == 0
    assert ollama_emulator_settings.requests() == []


async def test_a_non_member_cannot_request_a_stream(
    ws_connect, ollama_emulator_settings, room, carol
):
    c = await ws_connect(carol)
    reply = await request(c, "stream:request", {"sessionId": str(room.pk), "prompt": "hi"})
    assert reply["data"]["code"] == "FORBIDDEN"


async def test_a_request_that_cannot_be_stored_ends_with_nothing_saved_or_said(
    ws_connect, ollama_emulator_settings, room, alice, bob, settings, monkeypatch
):
    """The request is checked, then stored: if the requester is removed from the room in
    between, the request is refused, the model is never asked, and the room hears nothing
    of it."""
    from chat.models import Membership

    def draft_then_removed(**kwargs):
        plan = real_draft(**kwargs)
        Membership.objects.filter(session_id=room.pk, user=alice).delete()
        return plan

    real_draft = stream_records.stream_draft
    monkeypatch.setattr(stream_records, "stream_draft", draft_then_removed)
    settings.MAX_CONCURRENT_STREAMS = 1
    ollama_emulator_settings.configure(**SLOW)
    a = await ws_connect(alice)
    b = await joined(ws_connect, bob, room)

    reply = await request(a, "stream:request", {"sessionId": str(room.pk), "prompt": "hi"})
    await streams_finished()

    assert (reply["event"], reply["data"]["code"]) == ("error", "FORBIDDEN")
    assert await message_count(room) == 0
    assert not await database_sync_to_async(Stream.objects.filter(session_id=room.pk).exists)()
    assert await b.receive_nothing(timeout=0.5)
    assert running == {}
    assert ollama_emulator_settings.requests() == []
    monkeypatch.setattr(stream_records, "stream_draft", real_draft)
    assert (await ask(b, room))["streamId"], "the slot was given back"


async def test_an_answer_too_large_for_a_frame_leaves_its_whole_text_out_of_the_last_frames(
    ws_connect, ollama_emulator_settings, room, alice, bob, settings
):
    # The cap lowered so a short answer reaches it: the last chunk and stream:complete
    # leave the whole text out (contentOmitted), as does the saved message's event; the
    # deltas and the saved message have all of it (CONTRACT section 3, "Frame size").
    settings.WS_SEND_MAX_BYTES = 8192
    ollama_emulator_settings.configure(reply="漢字ü😀 " * 1500, delay_ms=0)
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    ack = await ask(a, room)
    seen_by_a = await frames_until_end(a, ack["streamId"])
    seen_by_b = await frames_until_end(b, ack["streamId"])
    await streams_finished()

    message = await saved(ack["messageId"])
    assert len(message.content.encode()) > settings.WS_SEND_MAX_BYTES
    for frames in (seen_by_a, seen_by_b):
        chunks = chunks_of(frames, ack["streamId"])
        assert "".join(c["delta"] for c in chunks) == message.content
        assert chunks[-1]["isComplete"] and chunks[-1]["contentOmitted"] is True
        assert "content" not in chunks[-1]
        complete = frames[-1]["data"]
        assert frames[-1]["event"] == "stream:complete"
        assert complete["contentOmitted"] is True and "content" not in complete
        edited = [f for f in frames if f["event"] == "message:edited"]
        assert edited[-1]["data"]["message"]["contentOmitted"] is True


async def test_a_stopped_answer_too_large_for_a_frame_leaves_the_part_kept_out(
    ws_connect, ollama_emulator_settings, room, alice, settings
):
    settings.WS_SEND_MAX_BYTES = 8192
    ollama_emulator_settings.configure(reply="漢字ü😀 " * 4000, delay_ms=2)
    a = await joined(ws_connect, alice, room)
    ack = await ask(a, room)
    before = []
    async with asyncio.timeout(WITHIN_S):
        while len("".join(c["delta"] for c in chunks_of(before, ack["streamId"])).encode()) < 9000:
            before.append(await receive(a))

    await request(a, "stream:stop", {"streamId": ack["streamId"]}, ref="stop")
    after = await frames_until_end(a, ack["streamId"])
    await streams_finished()

    stopped = after[-1]
    assert stopped["event"] == "stream:stopped"
    assert stopped["data"]["contentOmitted"] is True and "content" not in stopped["data"]
    deltas = "".join(c["delta"] for c in chunks_of(before + after, ack["streamId"]))
    assert (await saved(ack["messageId"])).content == deltas
