"""Regenerating an answer (``stream:regenerate`` and ``POST
/api/chat/messages/:id/regenerate``) against the Ollama emulator: a new version streamed into
the same message for every member, what the model is given, the refusals, the versions kept
(on the stream rows, in the message's metadata, over REST and in a ``lastSeq`` replay), and
which version the message shows after a failure or a stop."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from chat.services.messages import message_send
from llm import event_types

from ..chat.conftest import request
from .sse import asgi_client, bearer, parse_sse
from .streams import (
    WITHIN_S,
    chunks_of,
    frames_until_end,
    receive,
    streams_finished,
    streams_stopped,
)
from .versions import (
    answered,
    joined,
    last_request_messages,
    make_room,
    regenerated,
    saved,
    send,
    versions_of,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW = {"num_tokens": 400, "delay_ms": 20}
STILL_WRITING = "This answer is still being written: stop it first."


@pytest.fixture
async def room(alice, bob):
    return await make_room(alice, bob)


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


async def test_a_new_version_streams_into_the_same_message_for_everyone(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    ollama_emulator_settings.configure(reply="The first answer.")
    first = await answered(a, room)
    await frames_until_end(b, first["streamId"])
    ollama_emulator_settings.configure(reply="A better second answer.")

    reply = await send(b, "stream:regenerate", {"messageId": first["messageId"]})

    assert reply["event"] == "ack", reply
    ack = reply["data"]
    assert ack["messageId"] == first["messageId"] and ack["version"] == 2
    assert ack["streamId"] != first["streamId"]
    for ws in (a, b):
        frames = await frames_until_end(ws, ack["streamId"])
        (start,) = [f["data"] for f in frames if f["event"] == "stream:start"]
        assert start == event_types.stream_start(
            stream_id=ack["streamId"], session_id=room.pk, message_id=first["messageId"],
            agent_id=None, model="llama3.2", requested_by={"id": bob.pk, "username": "bob"},
            version=2,
        )  # fmt: skip
        chunks = chunks_of(frames, ack["streamId"])
        assert {c["messageId"] for c in chunks} == {first["messageId"]}
        assert "".join(c["delta"] for c in chunks) == "A better second answer."
        assert frames[-1]["event"] == "stream:complete"
    await streams_finished()

    message = await saved(first["messageId"])
    assert message.content == "A better second answer."
    assert message.metadata["version"] == 2
    assert message.metadata["streamId"] == ack["streamId"]
    assert message.metadata["requestedBy"] == {"id": bob.pk, "username": "bob"}
    assert [
        (v["version"], v["streamId"], v["status"], v["requestedBy"]["username"], v["model"])
        for v in message.metadata["versions"]
    ] == [
        (1, first["streamId"], "completed", "alice", "llama3.2"),
        (2, ack["streamId"], "completed", "bob", "llama3.2"),
    ]
    rows = await versions_of(first["messageId"])
    assert [(r.version, r.status, r.content) for r in rows] == [
        (1, "completed", "The first answer."),
        (2, "completed", "A better second answer."),
    ]
    # Still one answer in the room: no message was added.
    assert await database_sync_to_async(Message.objects.filter(session=room).count)() == 2


async def test_the_model_gets_the_prompt_and_what_came_before_it_only(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a = await joined(ws_connect, alice, room)
    await database_sync_to_async(message_send)(author=bob, session_id=room.pk, content="before")
    ollama_emulator_settings.configure(reply="ANSWER-ONE")
    first = await answered(a, room, "what is the capital of France?")
    # Said after the answer: not part of what it answered.
    await database_sync_to_async(message_send)(author=bob, session_id=room.pk, content="later")
    ollama_emulator_settings.configure(reply=None)

    await regenerated(a, first["messageId"])

    sent = last_request_messages(ollama_emulator_settings)
    assert [m["role"] for m in sent] == ["system", "user", "user"]
    assert [m["content"] for m in sent[1:]] == [
        "bob: before",
        "alice: what is the capital of France?",
    ]
    assert not any("ANSWER-ONE" in m["content"] or "later" in m["content"] for m in sent)
    message = await saved(first["messageId"])
    assert message.content == "Echo: alice: what is the capital of France?"


async def test_in_a_thread_the_context_is_the_thread_up_to_the_prompt(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    root = await database_sync_to_async(message_send)(
        author=bob, session_id=room.pk, content="thread root"
    )
    await database_sync_to_async(message_send)(author=bob, session_id=room.pk, content="top")
    a = await joined(ws_connect, alice, room)
    reply = await send(
        a,
        "stream:request",
        {"sessionId": str(room.pk), "prompt": "in the thread?", "parentMessageId": str(root.pk)},
    )
    await frames_until_end(a, reply["data"]["streamId"])
    await streams_finished()

    await regenerated(a, reply["data"]["messageId"])

    sent = last_request_messages(ollama_emulator_settings)
    assert [m["content"] for m in sent[1:]] == ["bob: thread root", "alice: in the thread?"]


async def test_a_second_regenerate_is_refused_while_a_version_streams(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    first = await answered(a, room)
    ollama_emulator_settings.configure(**SLOW)
    started = await send(a, "stream:regenerate", {"messageId": first["messageId"]})
    assert started["event"] == "ack", started

    refused = await send(b, "stream:regenerate", {"messageId": first["messageId"]}, ref="again")

    assert refused["event"] == "error"
    assert refused["data"]["code"] == "STREAM_LIMIT"
    assert refused["data"]["message"] == STILL_WRITING
    assert len(await versions_of(first["messageId"])) == 2
    # The first answer itself, while it streams, is refused the same way.
    other = await send(a, "stream:request", {"sessionId": str(room.pk), "prompt": "more?"})
    refused = await send(b, "stream:regenerate", {"messageId": other["data"]["messageId"]})
    assert refused["data"]["code"] == "STREAM_LIMIT", refused

    stop = await send(b, "stream:stop", {"streamId": started["data"]["streamId"]}, ref="stop")
    assert stop["event"] == "ack", stop
    await frames_until_end(a, started["data"]["streamId"])
    await streams_stopped()
    again = await send(b, "stream:regenerate", {"messageId": first["messageId"]}, ref="third")
    assert again["event"] == "ack" and again["data"]["version"] == 3, again


async def test_only_an_answer_to_a_prompt_by_a_member_is_regenerated(
    ws_connect, ollama_emulator_settings, room, alice, carol
):
    a = await joined(ws_connect, alice, room)
    first = await answered(a, room)
    prompt = await database_sync_to_async(Message.objects.get)(role="user", session=room)

    refused = await send(a, "stream:regenerate", {"messageId": str(prompt.pk)})
    assert refused["data"]["code"] == "VALIDATION_ERROR", refused

    outsider = await ws_connect(carol)
    refused = await request(outsider, "stream:regenerate", {"messageId": first["messageId"]})
    assert refused["data"]["code"] == "FORBIDDEN", refused
    refused = await request(
        outsider, "stream:regenerate", {"messageId": "00000000-0000-0000-0000-000000000000"}
    )
    assert refused["data"]["code"] == "NOT_FOUND", refused
    assert len(await versions_of(first["messageId"])) == 1


async def test_a_failed_version_is_kept_and_the_message_shows_the_previous_one(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    ollama_emulator_settings.configure(reply="The good answer.")
    first = await answered(a, room)
    ollama_emulator_settings.configure(
        reply="half of a broken one", failure="error_line", fail_after=2
    )

    ack = await regenerated(a, first["messageId"])

    frames = await frames_until_end(b, ack["streamId"])
    assert frames[-1]["event"] == "stream:error"
    message = await saved(first["messageId"])
    assert message.content == "The good answer."
    assert message.metadata["version"] == 1
    assert message.metadata["status"] == "completed"
    assert message.metadata["streamId"] == first["streamId"]
    assert [v["status"] for v in message.metadata["versions"]] == ["completed", "failed"]
    rows = await versions_of(first["messageId"])
    assert (rows[1].status, rows[1].content) == ("failed", "half of")
    # Later context uses the shown version.
    ollama_emulator_settings.configure(reply=None, failure=None, fail_after=None)
    await answered(a, room, "next")
    sent = last_request_messages(ollama_emulator_settings)
    assert {"role": "assistant", "content": "The good answer."} in [
        {"role": m["role"], "content": m["content"]} for m in sent
    ]


async def test_a_stopped_version_is_finished_and_shown(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    first = await answered(a, room)
    ollama_emulator_settings.configure(**SLOW)
    ack = (await send(a, "stream:regenerate", {"messageId": first["messageId"]}))["data"]
    async with asyncio.timeout(WITHIN_S):
        while (await receive(b))["event"] != "stream:chunk":
            pass

    stop = await send(b, "stream:stop", {"streamId": ack["streamId"]}, ref="stop")

    assert stop["event"] == "ack", stop
    frames = await frames_until_end(a, ack["streamId"])
    assert frames[-1]["event"] == "stream:stopped"
    await streams_finished()
    message = await saved(first["messageId"])
    assert message.metadata["version"] == 2 and message.metadata["status"] == "stopped"
    assert message.metadata["stoppedBy"] == {"id": bob.pk, "username": "bob"}
    assert message.content == frames[-1]["data"]["content"] != ""
    assert [v["status"] for v in message.metadata["versions"]] == ["completed", "stopped"]


async def test_a_replay_by_last_seq_carries_the_versions(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a = await joined(ws_connect, alice, room)
    ollama_emulator_settings.configure(reply="one")
    first = await answered(a, room)
    ollama_emulator_settings.configure(reply="two")
    second = await regenerated(a, first["messageId"])

    b = await ws_connect(bob)
    replay = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})

    missed = replay["data"]["missed"]
    seqs = [f["seq"] for f in missed]
    assert seqs == sorted(seqs)
    answer_frames = [f for f in missed if f["data"]["message"]["id"] == first["messageId"]]
    assert [f["event"] for f in answer_frames] == [
        "message:new",
        "message:edited",  # the first answer ended
        "message:edited",  # a second version started
        "message:edited",  # ... and ended
    ]
    final = answer_frames[-1]["data"]["message"]
    assert final["content"] == "two" and final["seq"] == answer_frames[0]["seq"]
    assert final["metadata"]["version"] == 2
    assert [(v["version"], v["streamId"], v["status"]) for v in final["metadata"]["versions"]] == [
        (1, first["streamId"], "completed"),
        (2, second["streamId"], "completed"),
    ]
    started = answer_frames[2]["data"]["message"]
    assert started["content"] == "one" and started["metadata"]["version"] == 1
    assert [v["status"] for v in started["metadata"]["versions"]] == ["completed", "streaming"]


async def test_rest_regenerate_and_the_versions_endpoint(
    ws_connect, ollama_emulator_settings, room, alice, bob, carol
):
    a = await joined(ws_connect, alice, room)
    ollama_emulator_settings.configure(reply="one")
    first = await answered(a, room)
    ollama_emulator_settings.configure(reply="two")

    async with asgi_client() as http:
        response = await http.post(
            f"/api/chat/messages/{first['messageId']}/regenerate",
            json={"config": {"model": "qwen2.5"}},
            headers=bearer(bob),
        )
        assert response.status_code == 201, response.text
        started = response.json()
        assert set(started) == {"streamId", "messageId", "version"}
        assert (started["messageId"], started["version"]) == (first["messageId"], 2)
        await frames_until_end(a, started["streamId"])
        await streams_finished()

        listed = await http.get(
            f"/api/chat/messages/{first['messageId']}/versions/", headers=bearer(bob)
        )
        outsider = await http.get(
            f"/api/chat/messages/{first['messageId']}/versions", headers=bearer(carol)
        )
        refused = await http.post(
            f"/api/chat/messages/{first['messageId']}/regenerate", headers=bearer(carol)
        )

    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["messageId"], body["version"]) == (first["messageId"], 2)
    assert [
        (v["version"], v["content"], v["model"], v["requestedBy"]["username"], v["status"])
        for v in body["versions"]
    ] == [(1, "one", "llama3.2", "alice", "completed"), (2, "two", "qwen2.5", "bob", "completed")]
    assert set(body["versions"][0]) == {
        "version", "streamId", "content", "model", "agentId", "requestedBy", "status",
        "finishReason", "tokens", "citations", "startedAt", "completedAt",
    }  # fmt: skip
    assert body["versions"][1]["finishReason"] == "stop" and body["versions"][1]["tokens"] == 1
    assert outsider.status_code == 403
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"


async def test_regenerate_spends_the_stream_request_budget(
    ws_connect, ollama_emulator_settings, room, alice, settings
):
    settings.WS_EVENT_LIMITS = {**settings.WS_EVENT_LIMITS, "stream:request": 2}
    a = await joined(ws_connect, alice, room)
    first = await answered(a, room)
    await regenerated(a, first["messageId"])

    refused = await send(a, "stream:regenerate", {"messageId": first["messageId"]})
    assert refused["data"]["code"] == "RATE_LIMITED", refused
    async with asgi_client() as http:
        response = await http.post(
            f"/api/chat/messages/{first['messageId']}/regenerate", headers=bearer(alice)
        )
    assert response.status_code == 429 and response.json()["code"] == "RATE_LIMITED"


async def test_regenerate_takes_a_slot(ws_connect, ollama_emulator_settings, room, alice, settings):
    a = await joined(ws_connect, alice, room)
    first = await answered(a, room)
    settings.MAX_CONCURRENT_STREAMS = 1
    ollama_emulator_settings.configure(**SLOW)
    busy = await send(a, "stream:request", {"sessionId": str(room.pk), "prompt": "long"})
    assert busy["event"] == "ack", busy

    refused = await send(a, "stream:regenerate", {"messageId": first["messageId"]}, ref="regen")

    assert refused["data"]["code"] == "STREAM_LIMIT", refused
    assert refused["data"]["message"] != STILL_WRITING
    assert len(await versions_of(first["messageId"])) == 1


async def test_attaching_to_an_earlier_version_gets_its_own_text(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)
    ollama_emulator_settings.configure(reply="one")
    first = await answered(a, room)
    ollama_emulator_settings.configure(reply="two")
    second = await regenerated(a, first["messageId"])

    async with asgi_client() as http:
        earlier = await http.get(
            f"/api/chat/streams/{first['streamId']}/events", headers=bearer(alice)
        )
        later = await http.get(
            f"/api/chat/streams/{second['streamId']}/events", headers=bearer(alice)
        )

    for response, text in ((earlier, "one"), (later, "two")):
        events = parse_sse(response.content)
        deltas = [e["data"]["delta"] for e in events if e["event"] != "complete"]
        assert "".join(deltas) == text
        assert events[-1]["event"] == "complete" and events[-1]["data"]["content"] == text


def test_the_schema_describes_the_versions_endpoint(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]

    operation = paths["/api/chat/messages/{message_id}/versions/"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/AnswerVersions"}
