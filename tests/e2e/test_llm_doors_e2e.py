"""The other LLM doors on real server processes, against the Ollama emulator: SSE answers
arriving as they are made, a client hanging up closing the request to Ollama, attaching to a
room stream (from the other worker when there are two) with and without ``Last-Event-ID``,
``/ws/ai/``, and the browser's SSE client (``static/js/sse-client.js``, run by Node)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import httpx
import pytest
import websockets

from llm.system_prompts import ONE_TO_ONE
from tests.llm.sse import SseParser

from .conftest import ROOT

pytestmark = pytest.mark.e2e

WITHIN_S = 30
SLOW = {"num_tokens": 400, "delay_ms": 20}


def auth(user: dict) -> dict:
    return {"Authorization": f"Bearer {user['access']}"}


async def timed_events(response: httpx.Response, until=("message-complete", "error")):
    """(arrival time, event) for each event of a streaming response, up to a final one."""
    parser = SseParser()
    seen = []
    async with asyncio.timeout(WITHIN_S):
        async for text in response.aiter_text():
            for event in parser.feed(text):
                seen.append((time.monotonic(), event))
                if event["event"] in until:
                    return seen
    return seen


async def send(ws, event: str, data: dict, ref="r") -> tuple[dict, list[dict]]:
    """Send a frame; its reply and the frames that arrived before it."""
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    before = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame, before
            before.append(frame)


async def until(ws, *events: str) -> list[dict]:
    frames = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if frame["event"] in events:
                return frames


# -- POST /api/stream -------------------------------------------------------------------------


async def test_sse_events_arrive_as_the_answer_is_made(platform, ollama):
    ollama.configure(num_tokens=30, delay_ms=60)
    alice = platform.user("alice")
    body = {"messages": [{"role": "user", "content": "count"}], "model": "llama3.2"}

    url = f"{platform.worker(0).url}/api/stream"
    async with (
        httpx.AsyncClient(timeout=WITHIN_S) as http,
        http.stream("POST", url, json=body, headers=auth(alice)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        seen = await timed_events(response)

    names = [event["event"] for _, event in seen]
    assert names[0] == "message-start" and names[-1] == "message-complete"
    chunk_times = [at for at, event in seen if event["event"] == "message-chunk"]
    complete_at = seen[-1][0]
    # ~1.8 s of generation: the first chunk came long before the end, and chunks came apart.
    assert complete_at - chunk_times[0] > 1.0
    assert len({round(at, 1) for at in chunk_times}) > 5
    text = "".join(e["data"]["content"] for _, e in seen if e["event"] == "message-chunk")
    assert text == seen[-1][1]["data"]["fullContent"] and len(text.split()) == 30


async def hang_up_mid_answer(platform, ollama, base_url: str) -> None:
    """Ask for a long answer in a chat, hang up after three chunks: Ollama's request must
    end within 2 s and the part received be kept as a stopped answer."""
    ollama.configure(**SLOW)
    alice = platform.user("alice")
    room = platform.room(alice)
    body = {"messages": [{"role": "user", "content": "go"}], "model": "llama3.2", "chatId": room}

    async with (
        httpx.AsyncClient(timeout=WITHIN_S) as http,
        http.stream("POST", f"{base_url}/api/stream", json=body, headers=auth(alice)) as response,
    ):
        parser = SseParser()
        chunks = 0
        async for text in response.aiter_text():
            chunks += sum(e["event"] == "message-chunk" for e in parser.feed(text))
            if chunks >= 3:
                break
    hung_up_at = time.time()

    gone = await ollama.await_event("disconnect", within=2)
    assert gone["at"] - hung_up_at < 2
    assert gone["tokens_sent"] < SLOW["num_tokens"]
    assert ollama.events("complete") == []
    with platform.api(alice) as http:
        async with asyncio.timeout(WITHIN_S):
            while True:
                prompt, answer = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
                if answer["metadata"].get("status") != "streaming":
                    break
                await asyncio.sleep(0.05)
    assert prompt["content"] == "go" and answer["metadata"]["status"] == "stopped"
    assert answer["content"]


async def test_a_client_hanging_up_closes_the_request_to_ollama(platform, ollama):
    await hang_up_mid_answer(platform, ollama, platform.worker(0).url)


async def test_a_client_hanging_up_closes_the_request_to_ollama_on_uvicorn(
    platform, ollama, uvicorn_worker
):
    await hang_up_mid_answer(platform, ollama, uvicorn_worker.url)


async def test_a_refused_sse_request_is_json_before_any_stream(platform, ollama):
    alice = platform.user("alice")
    with platform.api(alice) as http:
        invalid = http.post("/api/stream", json={"messages": []})
    with httpx.Client(base_url=platform.worker(0).url) as http:
        anonymous = http.post("/api/stream", json={"messages": [], "model": "x"})

    assert (invalid.status_code, invalid.json()["code"]) == (400, "VALIDATION_ERROR")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "UNAUTHORIZED")
    assert ollama.requests() == []


# -- attaching to a room stream ------------------------------------------------------------------


async def follow(platform, user: dict, stream_id: str, index: int, last_event_id=None, **kw):
    """Attach on worker ``index``; every event up to the final one. ``on_event`` (optional)
    sees the events received so far after each one, for a test that acts mid-stream."""
    headers = auth(user)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    on_event = kw.get("on_event") or (lambda seen: None)
    url = f"{platform.worker(index).url}/api/chat/streams/{stream_id}/events"
    parser, seen = SseParser(), []
    async with (
        httpx.AsyncClient(timeout=WITHIN_S) as http,
        http.stream("GET", url, headers=headers) as response,
        asyncio.timeout(WITHIN_S),
    ):
        assert response.status_code == 200, await response.aread()
        async for text in response.aiter_text():
            for event in parser.feed(text):
                seen.append(event)
                on_event(seen)
                if event["event"] in ("complete", "stopped", "error"):
                    return seen
    return seen


def text_of(events) -> str:
    return "".join(e["data"]["delta"] for e in events if e["event"] == "chunk")


def ids_of(events) -> list[int]:
    return [int(e["id"]) for e in events if e["event"] == "chunk"]


async def test_attaching_from_the_other_worker_with_and_without_last_event_id(platform, ollama):
    ollama.configure(num_tokens=80, delay_ms=25)
    alice, bob = platform.user("alice"), platform.user("bob")
    room = platform.room(alice, bob)
    ws = await platform.connect(alice, 0)
    try:
        await send(ws, "session:join", {"sessionId": room})
        ack, _ = await send(ws, "stream:request", {"sessionId": room, "prompt": "go"})
        stream_id = ack["data"]["streamId"]
        await until(ws, "stream:chunk")

        progress = asyncio.Event()
        so_far: list[dict] = []

        def watch(seen):
            if len(ids_of(seen)) >= 4 and not progress.is_set():
                so_far.extend(seen)
                progress.set()

        whole = asyncio.create_task(follow(platform, bob, stream_id, 1, on_event=watch))
        await asyncio.wait_for(progress.wait(), WITHIN_S)
        mark = ids_of(so_far)[2]
        prefix = text_of(so_far[: ids_of(so_far).index(mark) + 1])
        rest = await follow(platform, bob, stream_id, 1, last_event_id=mark)
        first = await whole
    finally:
        await ws.close()

    final = first[-1]
    assert final["event"] == "complete" and rest[-1]["event"] == "complete"
    content = final["data"]["content"]
    assert text_of(first) == content and len(content.split()) == 80
    assert ids_of(first) == sorted(set(ids_of(first)))
    assert all(i > mark for i in ids_of(rest)) and ids_of(rest) == sorted(set(ids_of(rest)))
    assert prefix + text_of(rest) == content

    started = time.monotonic()
    after_end = await follow(platform, alice, stream_id, 0, last_event_id=mark)
    assert time.monotonic() - started < 2
    assert prefix + text_of(after_end) == content and after_end[-1]["event"] == "complete"
    assert [e["event"] for e in await follow(platform, alice, stream_id, 1)] == [
        "chunk",
        "complete",
    ]


# -- /ws/ai/ ---------------------------------------------------------------------------------


async def test_ws_ai_chat_start_round_trip(platform, ollama):
    ollama.configure(reply="Hello from the assistant.", delay_ms=10)
    alice = platform.user("alice")
    url = platform.worker(0).url.replace("http://", "ws://") + f"/ws/ai/?token={alice['access']}"
    async with websockets.connect(url) as ws:
        first = json.loads(await ws.recv())
        ack, early = await send(ws, "chat:start", {"message": "Say hello"})
        frames = early + await until(ws, "chat:end", "chat:error")

    assert first["event"] == "connection:success"
    assert ack["event"] == "ack", ack
    conversation_id = ack["data"]["conversationId"]
    events = [f["event"] for f in frames]
    assert events[:2] == ["chat:conversation", "chat:user-message"]
    assert events[-1] == "chat:end" and set(events[2:-1]) == {"chat:message"}
    text = "".join(f["data"]["content"] for f in frames if f["event"] == "chat:message")
    assert text == "Hello from the assistant."
    assert frames[-1]["data"]["conversationId"] == conversation_id
    with platform.api(alice) as http:
        messages = http.get(f"/api/chat/sessions/{conversation_id}/messages").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "Say hello"),
        ("assistant", "Hello from the assistant."),
    ]
    # A conversation is one person and the assistant: its default system prompt, no names.
    (request,) = ollama.requests()
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", ONE_TO_ONE),
        ("user", "Say hello"),
    ]


# -- the browser's SSE client, run by Node ------------------------------------------------------

NODE_SCRIPT = """
const { SSEChatClient } = await import(process.argv[1]);
const [url, token, stopAfterArg] = process.argv.slice(2);
const stopAfter = Number(stopAfterArg);
const seen = [];
const client = new SSEChatClient({ url, token });
const result = await client.sendMessage(
  { messages: [{ role: "user", content: "hi there" }], model: "llama3.2" },
  {
    onStart: (d) => seen.push(["start", d]),
    onChunk: (d) => {
      seen.push(["chunk", d]);
      if (stopAfter > 0 && seen.length > stopAfter) client.stop();
    },
    onComplete: (d) => seen.push(["complete", d]),
    onError: (d) => seen.push(["error", d]),
  },
);
console.log(JSON.stringify({ result, seen }));
"""


def run_node_client(platform, user: dict, stop_after: int = 0) -> dict:
    if shutil.which("node") is None:
        pytest.skip("Node is not installed")
    module = (ROOT / "static" / "js" / "sse-client.js").as_uri()
    done = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_SCRIPT, module,
         f"{platform.worker(0).url}/api/stream", user["access"], str(stop_after)],
        capture_output=True, text=True, timeout=WITHIN_S, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


async def test_the_sse_client_receives_an_answer(platform, ollama):
    ollama.configure(reply="A client in the browser.")
    alice = platform.user("alice")

    out = await asyncio.to_thread(run_node_client, platform, alice)

    kinds = [kind for kind, _ in out["seen"]]
    assert kinds[0] == "start" and kinds[-1] == "complete"
    text = "".join(d["content"] for kind, d in out["seen"] if kind == "chunk")
    assert text == out["seen"][-1][1]["fullContent"] == "A client in the browser."
    assert out["result"] == {"status": "complete", "content": "A client in the browser."}


async def test_the_sse_clients_stop_closes_the_request_to_ollama(platform, ollama):
    ollama.configure(**SLOW)
    alice = platform.user("alice")

    out = await asyncio.to_thread(run_node_client, platform, alice, 3)

    assert out["result"]["status"] == "stopped"
    gone = await ollama.await_event("disconnect", within=2)
    assert gone["tokens_sent"] < SLOW["num_tokens"]
