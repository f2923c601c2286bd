"""LLM answers through a room, against a direct langchain-ollama client on the same Ollama
emulator.

    python bench/stream.py                              # the three measurements below
    python bench/stream.py --write docs/benchmarks.md   # ... and record the numbers
    python bench/stream.py --rounds 3 --requests 10 --streams 20

One daphne worker (``bench.servers``: a fresh PostgreSQL database, Redis with a key prefix of
its own, ``CHANNEL_LAYER=pubsub`` unless ``--layer core``) has ``OLLAMA_URL`` pointed at the
Ollama emulator (``llm.emulator.EmulatorServer``), which this script starts in a process of its
own so that neither client shares an interpreter (and its GIL) with it. Every room client is a
registered user with a JWT talking to ``/ws/chat/`` exactly as the contract says
(``session:join``, ``stream:request``, then ``stream:*`` frames); the direct client is
``ChatOllama(base_url=<emulator>, model=..., num_predict=...).astream([HumanMessage(prompt)])``,
a new one for every answer, as the platform makes one per answer. Both run in this process, on
the standard asyncio loop, one at a time except in the concurrency part.

1. Throughput: a long answer (``--tokens``, 2000) with no delay in the emulator, in
   ``--rounds`` rounds alternating direct and room. Tokens/s = answer tokens / the time from
   the request (calling ``astream``; sending ``stream:request``) to the last token (the chunk
   with Ollama's ``done``; the ``stream:chunk`` with ``isComplete``). Medians are reported.
2. Time to first token: ``--requests`` short answers, alternating direct and room: calling
   ``astream`` to its first non-empty chunk, and sending ``stream:request`` to the first
   ``stream:chunk``. The added time is the room's percentile minus the direct client's.
3. Concurrency: ``--streams`` rooms, each with ``--listeners`` members connected to the same
   worker (the first of them asks), all requested at once; the emulator paces each answer
   (``--stream-tokens`` tokens, ``--token-delay-ms`` apart). Every listener must get the
   chunk indexes 0..N without a gap or a duplicate, the last with ``isComplete``, and the
   deltas must add up to that chunk's ``content``, to ``stream:complete``'s and to the text the
   emulator sent. Total time: the first request sent to the last ``stream:complete`` received.

Throttles stay as they are (``stream:request``: 10 per user per minute, CONTRACT section 3): a
room request is made by a user that has asked at most ``REQUEST_BUDGET`` times, so parts 1 and
2 rotate over several users (each answer in a fresh room, so the model sees the same one-message
context as the direct client), and part 3 has one requester per room. ``MAX_CONCURRENT_STREAMS``
(``--max-streams``) and ``STREAM_DELAY`` (``--stream-delay``, the platform's default 50 ms) are
set in the worker's environment. ``--profile`` samples the worker with py-spy during parts 2
and 3 and says what its event loop and its database thread spent their time on. Loopback only;
everything started here is stopped here; the defaults take two to three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import httpx
import orjson
from websockets.asyncio.client import connect

if __package__ in (None, ""):  # run as ``python bench/stream.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout import log_issues, machine, register
from bench.servers import (
    ROOT,
    Worker,
    add_service_options,
    cpu_seconds,
    free_port,
    fresh_database,
    machine_cpu,
    migrate,
    postgres_backends,
    start_worker,
    stop_process,
    wait_for_port,
    worker_env,
    write_section,
)

MODEL = "llama3.2"  # one of the emulator's models, and the platform's default OLLAMA_MODEL
MAX_TOKENS = 4096  # num_predict of both clients (LLM_DEFAULT_MAX_TOKENS of the worker)
REQUEST_BUDGET = 9  # stream:request per user: the throttle allows 10 per minute
PROMPT = "Tell me a long story."
REPLY = (
    "Once upon a time a small model streamed its answer word by word through a room, and "
    "every listener read the same words in the same order, none lost and none doubled."
)
FINAL_EVENTS = ("stream:complete", "stream:stopped", "stream:error")
TARGET_RATIO = 0.90
TARGET_ADDED_MS = 25.0
ANSWER_TIMEOUT_S = 60.0
CONCURRENT_TIMEOUT_S = 150.0  # part 3: every stream ended, or it counts as unfinished
PAUSE_S = 0.1  # between two measured answers, not measured
perf = time.perf_counter


# --- the emulator ---------------------------------------------------------------------------


def serve_emulator(port: int) -> None:
    """``--serve-emulator PORT``: the Ollama emulator in this process until SIGTERM."""
    from llm.emulator import EmulatorServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = EmulatorServer(port=port).start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


class Emulator:
    """The emulator process and its control endpoint."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-emulator", str(self.port)],
            cwd=ROOT,
        )
        wait_for_port(self.port, self.process)
        self.url = f"http://127.0.0.1:{self.port}"

    def configure(self, **script) -> None:
        """Replace the script: the given fields over the emulator's defaults."""
        with httpx.Client(base_url=self.url, timeout=10) as http:
            http.post("/_emulator/reset").raise_for_status()
            http.post("/_emulator/script", json=script).raise_for_status()

    def stop(self) -> None:
        stop_process(self.process)


def expected_text(tokens: int) -> str:
    """What the emulator streams for ``reply=REPLY, num_tokens=tokens``."""
    from llm.emulator.script import Script, plan_tokens

    return "".join(plan_tokens(Script(reply=REPLY, num_tokens=tokens), []))


# --- the two clients ------------------------------------------------------------------------


@dataclass
class Answer:
    """One answer as a client saw it (times from ``perf()``)."""

    kind: str  # direct | room
    sent_at: float
    first_at: float | None = None
    last_at: float | None = None
    text: str = ""
    tokens: int = 0
    chunks: int = 0
    ok: bool = True
    problem: str = ""
    worker_cpu: float = 0.0
    client_cpu: float = 0.0
    emulator_cpu: float = 0.0
    marks: dict = field(default_factory=dict)  # room: ms from the request to each stage
    made_ms: float = 0.0  # direct: making the ChatOllama (before the request)

    @property
    def ttft_ms(self) -> float:
        return (self.first_at - self.sent_at) * 1000

    @property
    def total_s(self) -> float:
        return self.last_at - self.sent_at

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s


async def direct_answer(url: str) -> Answer:
    from langchain_core.messages import HumanMessage
    from langchain_ollama import ChatOllama

    made = perf()
    llm = ChatOllama(
        base_url=url,
        model=MODEL,
        num_predict=MAX_TOKENS,
        client_kwargs={"timeout": httpx.Timeout(10.0, read=120.0)},
    )
    answer = Answer("direct", sent_at=perf())
    answer.made_ms = (answer.sent_at - made) * 1000
    parts = []
    try:
        async for piece in llm.astream([HumanMessage(PROMPT)]):
            now = perf()
            if isinstance(piece.content, str) and piece.content:
                if answer.first_at is None:
                    answer.first_at = now
                parts.append(piece.content)
                answer.chunks += 1
            if (piece.response_metadata or {}).get("done_reason"):
                answer.last_at = now
                usage = piece.usage_metadata or {}
                answer.tokens = usage.get("output_tokens") or len(parts)
    finally:
        client = getattr(llm, "_async_client", None)
        if client is not None:
            await client.close()
    answer.text = "".join(parts)
    if answer.last_at is None or answer.first_at is None:
        answer.ok, answer.problem = False, "no done line"
    return answer


async def loop_turns(url: str) -> tuple[int, float]:
    """Read one answer directly (not measured) while another task counts the turns the event
    loop gives it: how often a ChatOllama reading an answer that is all waiting lets other
    work run. (turns, the longest wait in ms)."""
    waits: list[float] = []
    reading = True

    async def ticker() -> None:
        last = perf()
        while reading:
            await asyncio.sleep(0)
            now = perf()
            waits.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        await direct_answer(url)
    finally:
        reading = False
        await task
    return len(waits), max(waits, default=0.0) * 1000


@dataclass(eq=False)
class Listen:
    """One listener's view of the stream in one room."""

    session: str
    ended: asyncio.Future
    deltas: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0
    first_at: float | None = None
    complete_at: float | None = None  # the isComplete chunk
    complete_index: int | None = None
    final_content: str | None = None
    tokens: int = 0
    end_event: str | None = None
    end_data: dict | None = None
    marks: dict = field(default_factory=dict)  # when the stages of a request showed

    def on_frame(self, event: str, data: dict, now: float) -> None:
        if event == "message:new":
            role = (data.get("message") or {}).get("role")
            self.marks.setdefault(f"message:new ({role})", now)
        elif event == "stream:start":
            self.marks.setdefault(event, now)
        if event == "stream:chunk":
            index = data["index"]
            if index in self.deltas:
                self.duplicates += 1
            self.deltas[index] = data["delta"]
            if self.first_at is None:
                self.first_at = now
            if data.get("isComplete"):
                self.complete_at = now
                self.complete_index = index
                self.final_content = data.get("content")
                self.tokens = data.get("tokens") or 0
        elif event in FINAL_EVENTS and not self.ended.done():
            self.end_event, self.end_data = event, data
            self.ended.set_result(now)

    def text(self) -> str:
        return "".join(self.deltas[i] for i in sorted(self.deltas))

    def gaps(self, chunks: int) -> int:
        """Indexes of 0..chunks-1 this listener never got."""
        return sum(1 for i in range(chunks) if i not in self.deltas)


class Conn:
    """One user's ``/ws/chat/`` connection."""

    def __init__(self, user: dict, ws) -> None:
        self.user = user
        self.ws = ws
        self.refs = 0
        self.pending: dict[str, asyncio.Future] = {}
        self.listens: dict[str, Listen] = {}
        self.errors: Counter = Counter()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, worker: Worker, user: dict) -> Conn:
        ws = await connect(
            f"{worker.ws_url}?token={user['access']}",
            compression=None, max_size=2**22, ping_interval=None, open_timeout=30,
        )  # fmt: skip
        first = orjson.loads(await ws.recv(decode=False))
        if first.get("event") != "connection:success":
            raise RuntimeError(f"unexpected first frame {first}")
        return cls(user, ws)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                now = perf()
                frame = orjson.loads(raw)
                event, data = frame.get("event"), frame.get("data") or {}
                if event in ("ack", "error") and frame.get("ref") in self.pending:
                    frame["at"] = now
                    future = self.pending.pop(frame["ref"])
                    if not future.done():
                        future.set_result(frame)
                    if event == "error":
                        self.errors[data.get("code", "?")] += 1
                elif event and event.startswith(("stream:", "message:new")):
                    session = data.get("sessionId") or (data.get("message") or {}).get("sessionId")
                    listen = self.listens.get(session)
                    if listen is not None:
                        listen.on_frame(event, data, now)

    def send(self, event: str, data: dict) -> asyncio.Future:
        """Send a frame; the future of its reply (ack or error)."""
        self.refs += 1
        ref = str(self.refs)
        future = asyncio.get_running_loop().create_future()
        self.pending[ref] = future
        frame = orjson.dumps({"event": event, "data": data, "ref": ref}).decode()
        return asyncio.ensure_future(self._send_then(frame, future))

    async def _send_then(self, frame: str, future: asyncio.Future) -> dict:
        await self.ws.send(frame)
        return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)

    async def join(self, session: str) -> None:
        reply = await self.send("session:join", {"sessionId": session})
        if reply.get("event") != "ack":
            raise RuntimeError(f"session:join failed: {reply}")

    def watch(self, session: str) -> Listen:
        listen = Listen(session, asyncio.get_running_loop().create_future())
        self.listens[session] = listen
        return listen

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        await asyncio.wait([self.reader])


class Requesters:
    """Room requests rotated over users so none passes its stream:request budget; each
    answer in a fresh room of its requester."""

    def __init__(self, conns: list[Conn], rooms: dict[int, list[str]]) -> None:
        self.conns = conns
        self.rooms = rooms  # user id -> rooms left
        self.used: Counter = Counter()
        self.turn = 0

    def next(self) -> tuple[Conn, str]:
        for _ in range(len(self.conns)):
            conn = self.conns[self.turn % len(self.conns)]
            self.turn += 1
            if self.used[conn.user["id"]] < REQUEST_BUDGET and self.rooms[conn.user["id"]]:
                self.used[conn.user["id"]] += 1
                return conn, self.rooms[conn.user["id"]].pop()
        raise RuntimeError("every requester has used its stream:request budget")


async def room_answer(requesters: Requesters, text: str) -> Answer:
    conn, room = requesters.next()
    listen = conn.watch(room)
    answer = Answer("room", sent_at=perf())
    reply = await conn.send("stream:request", {"sessionId": room, "prompt": PROMPT})
    if reply.get("event") != "ack":
        answer.ok, answer.problem = False, f"{reply.get('data', {}).get('code')}"
        return answer
    try:
        await asyncio.wait_for(asyncio.shield(listen.ended), ANSWER_TIMEOUT_S)
    except TimeoutError:
        answer.ok, answer.problem = False, "no end within the timeout"
        return answer
    answer.first_at, answer.last_at = listen.first_at, listen.complete_at
    stages = {**listen.marks, "ack": reply["at"], "first stream:chunk": listen.first_at}
    answer.marks = {name: (at - answer.sent_at) * 1000 for name, at in stages.items() if at}
    answer.text = listen.text()
    answer.tokens = listen.tokens
    answer.chunks = len(listen.deltas)
    if listen.end_event != "stream:complete" or answer.last_at is None:
        answer.ok, answer.problem = False, f"{listen.end_event} {listen.end_data}"
    elif answer.text != text or listen.gaps(listen.complete_index + 1) or listen.duplicates:
        answer.ok, answer.problem = False, "wrong text or chunks"
    return answer


# --- the parts ------------------------------------------------------------------------------


class Meter:
    """CPU seconds of the worker, the emulator, this process and the run's database backends,
    and the machine's busy share."""

    def __init__(self, worker_pid: int, emulator_pid: int, database: str) -> None:
        self.pids = {"worker": worker_pid, "emulator": emulator_pid, "client": os.getpid()}
        self.database = database

    def read(self) -> dict:
        sample = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        sample["db"] = sum(cpu_seconds(pid) for pid in postgres_backends(self.database))
        sample["machine"] = machine_cpu()
        sample["wall"] = perf()
        return sample

    @staticmethod
    def shares(before: dict, after: dict) -> dict:
        wall = after["wall"] - before["wall"]
        shares = {
            name: (after[name] - before[name]) / wall
            for name in ("worker", "emulator", "client", "db")
        }
        (b0, t0), (b1, t1) = before["machine"], after["machine"]
        shares["machine"] = (b1 - b0) / max(1, t1 - t0)
        return shares


LOOP_PARTS = (
    ("making the ChatOllama (its two httpx clients)", ("_set_clients",)),
    ("tools (building them and their schemas)", ("build_tools", "tool_schema", "bind_tools")),
    ("reading the model's answer (langchain, ollama, httpx)", ("langchain", "ollama", "http")),
    ("WebSocket framing and socket writes", ("autobahn", "untilConcludes", "writeSomeData")),
    ("channel layer", ("channels_redis", "channels/layers")),
    ("Redis state, throttles and slots", ("redis/",)),
    ("runner, room stream and consumers", ("llm/", "chat/", "accounts/", "channels/")),
    ("event loop and other", ("",)),
)
SYNC_PARTS = (
    ("post-commit hand-off to the loop", ("broadcast_now",)),
    ("profanity filter", ("better_profanity",)),
    ("SQL, including waiting for PostgreSQL", ("psycopg",)),
    ("ORM, serializers and other Python", ("",)),
)
PROFILE_RATE = 100  # py-spy samples per second


def summarise_profile(path: Path, per: int) -> str:
    """What the worker's event loop and its database threads were busy with, in ms per
    request (``per`` requests), from a py-spy ``raw --idle --threads`` recording."""
    samples: dict[str, list[tuple[str, int]]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        stack, _, count = line.rpartition(" ")
        thread, _, frames = stack.partition(";")
        samples.setdefault(thread, []).append((frames, int(count)))
    loop = next((t for t in samples if "MainThread" in t), None)
    if loop is None:
        return ""
    busy = {"loop": Counter(), "sync": Counter()}
    for frames, n in samples[loop]:
        if "select (selectors.py" not in frames.rsplit(";", 1)[-1]:
            busy["loop"][next(w for w, marks in LOOP_PARTS if any(m in frames for m in marks))] += n
    threads = 0
    for rows in samples.values():
        if any("SyncToAsync.thread_handler" in frames for frames, _ in rows):
            threads += 1
            for frames, n in rows:
                if "SyncToAsync.thread_handler" in frames:
                    what = next(w for w, marks in SYNC_PARTS if any(m in frames for m in marks))
                    busy["sync"][what] += n
    wall = sum(n for _, n in samples[loop])

    def ms(n: int) -> str:
        return f"{n * 1000 / PROFILE_RATE / max(1, per):.0f} ms"

    def part(kind: str) -> str:
        counter = busy[kind]
        detail = ", ".join(f"{what} {ms(n)}" for what, n in counter.most_common())
        return f"{ms(sum(counter.values()))} ({detail or 'nothing'})"

    return (
        f"per request, over {ms(wall)} of wall time: event loop busy {part('loop')}; "
        f"database thread{'s' if threads != 1 else ''} ({threads}) busy {part('sync')}"
    )


class Profile:
    """py-spy recording the worker (``--profile``) while a part runs."""

    def __init__(self, py_spy: str | None, pid: int, out: Path) -> None:
        self.py_spy, self.pid, self.out = py_spy, pid, out
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Profile:
        if self.py_spy:
            self.process = await asyncio.create_subprocess_exec(
                self.py_spy, "record", "--pid", str(self.pid), "--threads", "--idle",
                "--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(self.out),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)  # py-spy attaches
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its file and ends
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()

    def summary(self, per: int) -> str:
        return summarise_profile(self.out, per) if self.process is not None else ""


async def measured(meter: Meter, make) -> Answer:
    before = meter.read()
    answer = await make()
    after = meter.read()
    answer.worker_cpu = after["worker"] - before["worker"]
    answer.client_cpu = after["client"] - before["client"]
    answer.emulator_cpu = after["emulator"] - before["emulator"]
    await asyncio.sleep(PAUSE_S)
    return answer


async def alternate(count: int, direct, room, meter: Meter) -> tuple[list[Answer], list[Answer]]:
    """``count`` answers of each client, alternating which goes first."""
    directs, rooms = [], []
    for i in range(count):
        order = [(direct, directs), (room, rooms)]
        for make, into in order if i % 2 == 0 else order[::-1]:
            into.append(await measured(meter, make))
    return directs, rooms


@dataclass
class Throughput:
    tokens: int
    direct: list[Answer]
    room: list[Answer]
    turns: tuple[int, float] = (0, 0.0)  # loop_turns() over one answer of this length


@dataclass
class FirstToken:
    tokens: int
    direct: list[Answer]
    room: list[Answer]
    profile: str = ""


@dataclass
class Concurrency:
    streams: int
    listeners: int
    tokens: int
    token_delay_ms: float
    total_s: float = 0.0
    start_spread_s: float = 0.0  # first request sent to the last stream's first chunk
    peak: int = 0
    tokens_received: int = 0  # answer tokens of the streams that completed
    completed: int = 0
    chunks: int = 0  # chunks of all streams (as numbered by the worker)
    delivered: int = 0  # chunk frames received by all listeners
    lost: int = 0
    duplicates: int = 0
    bad_text: int = 0
    unfinished: int = 0
    errors: Counter = field(default_factory=Counter)
    cpu: dict = field(default_factory=dict)
    stream_s: list[float] = field(default_factory=list)  # each stream: request to complete
    profile: str = ""

    @property
    def ideal_s(self) -> float:
        return self.tokens * self.token_delay_ms / 1000

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_received / self.total_s if self.total_s else 0.0


async def run_concurrency(worker: Worker, emulator: Emulator, users, rooms, args, meter):
    result = Concurrency(args.streams, args.listeners, args.stream_tokens, args.token_delay_ms)
    emulator.configure(reply=REPLY, num_tokens=args.stream_tokens, delay_ms=args.token_delay_ms)
    text = expected_text(args.stream_tokens)
    gate = asyncio.Semaphore(20)

    async def open_one(user):
        async with gate:
            return await Conn.open(worker, user)

    conns = await asyncio.gather(*(open_one(u) for u in users))
    groups = [conns[i * args.listeners : (i + 1) * args.listeners] for i in range(args.streams)]
    try:
        listens = []
        for room, group in zip(rooms, groups, strict=True):
            listens.append([conn.watch(room) for conn in group])

        async def join(conn, room):
            async with gate:
                await conn.join(room)

        await asyncio.gather(
            *(join(conn, room) for room, group in zip(rooms, groups, strict=True) for conn in group)
        )
        await asyncio.sleep(1.0)
        profile = Profile(args.profile, worker.process.pid, args.log_dir / "profile-streams.txt")
        async with profile:
            before = meter.read()
            start = perf()
            replies = await asyncio.gather(
                *(
                    group[0].send("stream:request", {"sessionId": room, "prompt": PROMPT})
                    for room, group in zip(rooms, groups, strict=True)
                ),
                return_exceptions=True,
            )
            waiting = [
                listen.ended
                for reply, group in zip(replies, listens, strict=True)
                if isinstance(reply, dict) and reply.get("event") == "ack"
                for listen in group
            ]
            for reply in replies:
                if not isinstance(reply, dict):
                    result.errors[type(reply).__name__] += 1
                elif reply.get("event") != "ack":
                    result.errors[reply.get("data", {}).get("code", "?")] += 1
            if waiting:
                await asyncio.wait(waiting, timeout=CONCURRENT_TIMEOUT_S)
            end = max((f.result() for f in waiting if f.done()), default=perf())
            after = meter.read()
        result.profile = profile.summary(args.streams)
        result.total_s = end - start
        result.cpu = Meter.shares(before, after)
        firsts, spans = [], []
        for reply, group in zip(replies, listens, strict=True):
            if not (isinstance(reply, dict) and reply.get("event") == "ack"):
                continue
            known = [lsn.complete_index for lsn in group if lsn.complete_index is not None]
            seen = max(max(lsn.deltas, default=-1) for lsn in group) + 1
            chunks = known[0] + 1 if known else seen
            result.chunks += chunks
            done = all(lsn.end_event == "stream:complete" for lsn in group)
            if done:
                result.completed += 1
                result.tokens_received += group[0].tokens
            else:
                result.unfinished += 1
                for lsn in group:
                    if lsn.end_event and lsn.end_event != "stream:complete":
                        result.errors[(lsn.end_data or {}).get("code", lsn.end_event)] += 1
            for lsn in group:
                result.delivered += len(lsn.deltas)
                # without any listener's last chunk the count is a lower bound: one more
                result.lost += lsn.gaps(chunks) + (0 if known else 1)
                result.duplicates += lsn.duplicates
                complete_content = (lsn.end_data or {}).get("content")
                if done and not (lsn.text() == lsn.final_content == complete_content == text):
                    result.bad_text += 1
            first = group[0]
            if first.first_at is not None and first.complete_at is not None:
                firsts.append(first.first_at)
                spans.append((first.first_at, first.complete_at))
                result.stream_s.append(first.complete_at - start)
        if firsts:
            result.start_spread_s = max(firsts) - start
        edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        running = 0
        for _, step in edges:
            running += step
            result.peak = max(result.peak, running)
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))
    return result


async def run_parts(worker: Worker, emulator: Emulator, prepared: dict, args, meter: Meter):
    conns = [await Conn.open(worker, user) for user in prepared["requesters"]]
    try:
        for conn in conns:
            for room in prepared["rooms"][conn.user["id"]]:
                await conn.join(room)
        requesters = Requesters(conns, prepared["rooms"])

        # 1. throughput
        emulator.configure(reply=REPLY, num_tokens=args.tokens)
        text = expected_text(args.tokens)
        for _ in range(args.warmup):
            await direct_answer(emulator.url)
            await room_answer(requesters, text)
        print(f"1. throughput: {args.rounds} rounds of {args.tokens} tokens", flush=True)
        profile = Profile(args.profile, worker.process.pid, args.log_dir / "profile-rate.txt")
        async with profile:
            directs, rooms = await alternate(
                args.rounds,
                lambda: direct_answer(emulator.url),
                lambda: room_answer(requesters, text),
                meter,
            )
        check(directs + rooms, text)
        throughput = Throughput(args.tokens, directs, rooms, await loop_turns(emulator.url))

        # 2. time to first token
        emulator.configure(reply=REPLY, num_tokens=args.ttft_tokens)
        text = expected_text(args.ttft_tokens)
        print(f"2. time to first token: {args.requests} requests of each client", flush=True)
        profile = Profile(args.profile, worker.process.pid, args.log_dir / "profile-ttft.txt")
        async with profile:
            directs, rooms = await alternate(
                args.requests,
                lambda: direct_answer(emulator.url),
                lambda: room_answer(requesters, text),
                meter,
            )
        check(directs + rooms, text)
        first_token = FirstToken(args.ttft_tokens, directs, rooms, profile.summary(len(rooms)))
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))

    # 3. concurrency
    print(
        f"3. concurrency: {args.streams} streams x {args.listeners} listeners, "
        f"{args.stream_tokens} tokens {args.token_delay_ms:g} ms apart",
        flush=True,
    )
    concurrency = await run_concurrency(
        worker, emulator, prepared["listeners"], prepared["concurrent_rooms"], args, meter
    )
    return throughput, first_token, concurrency


def check(answers: list[Answer], text: str) -> None:
    for answer in answers:
        if answer.ok and answer.text != text:
            answer.ok, answer.problem = False, "text differs from the emulator's"
    bad = [a for a in answers if not a.ok]
    if bad:
        problems = Counter(f"{a.kind}: {a.problem}" for a in bad)
        raise RuntimeError(f"answers failed: {dict(problems)}")


# --- set-up ---------------------------------------------------------------------------------


async def create_room(http: httpx.AsyncClient, owner: dict, members: list[dict], title: str):
    response = await http.post(
        "/api/chat/sessions",
        json={"title": title, "memberIds": [u["id"] for u in members]},
        headers={"Authorization": f"Bearer {owner['access']}"},
    )
    response.raise_for_status()
    return response.json()["id"]


async def prepare(url: str, args) -> dict:
    """Users and rooms through the REST API: requesters of parts 1 and 2, each with a fresh
    room for every answer it will ask for, and the rooms of part 3 with their members."""
    tag = uuid.uuid4().hex[:6]
    answers = args.warmup + args.rounds + args.requests
    requesters = await register(url, math.ceil(answers / REQUEST_BUDGET) + 1, f"str{tag}_")
    listeners = await register(url, args.streams * args.listeners, f"stc{tag}_")
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def room(owner, members, title):
            async with gate:
                return await create_room(http, owner, members, title)

        rooms = {}
        for user in requesters:
            rooms[user["id"]] = list(
                await asyncio.gather(
                    *(room(user, [], f"stream {user['id']} {k}") for k in range(REQUEST_BUDGET))
                )
            )
        groups = [
            listeners[i * args.listeners : (i + 1) * args.listeners] for i in range(args.streams)
        ]
        concurrent_rooms = await asyncio.gather(
            *(room(group[0], group[1:], f"concurrent {i}") for i, group in enumerate(groups))
        )
    return {
        "requesters": requesters,
        "rooms": rooms,
        "listeners": listeners,
        "concurrent_rooms": list(concurrent_rooms),
    }


def run(args) -> tuple[Throughput, FirstToken, Concurrency, Counter, dict]:
    database_url, drop = fresh_database(args.postgres_url)
    database = urlparse(database_url).path.lstrip("/")
    media = tempfile.mkdtemp(prefix="chat-bench-media-")
    emulator = Emulator()
    worker = None
    try:
        env = worker_env(
            database_url=database_url,
            redis_url=args.redis_url,
            AUTH_RATE="off",
            DEBUG="false",
            LOG_LEVEL="WARNING",
            JWT_ACCESS_SECONDS="3600",
            MEDIA_ROOT=media,
            REALTIME_PREFIX=f"chat-bench-{uuid.uuid4().hex[:8]}",
            CHANNEL_LAYER=args.layer,
            OLLAMA_URL=emulator.url,
            OLLAMA_MODEL=MODEL,
            LLM_DEFAULT_MAX_TOKENS=str(MAX_TOKENS),
            STREAM_DELAY=str(args.stream_delay),
            MAX_CONCURRENT_STREAMS=str(args.max_streams),
        )
        migrate(env)
        worker = start_worker(env, args.log_dir)
        meter = Meter(worker.process.pid, emulator.process.pid, database)

        async def main():
            prepared = await prepare(worker.url, args)
            return await run_parts(worker, emulator, prepared, args, meter)

        throughput, first_token, concurrency = asyncio.run(main())
    finally:
        if worker is not None:
            stop_process(worker.process)
        emulator.stop()
        drop()
        shutil.rmtree(media, ignore_errors=True)
    settings = {
        "STREAM_DELAY": args.stream_delay,
        "MAX_CONCURRENT_STREAMS": args.max_streams,
        "CHANNEL_LAYER": args.layer,
    }
    return throughput, first_token, concurrency, log_issues([worker.log]), settings


# --- report ---------------------------------------------------------------------------------


def median(values) -> float:
    return statistics.median(values) if values else 0.0


def pct(values, q: float) -> float:
    """The q-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _rule(head: str) -> str:
    return "|" + " --- |" * (head.count("|") - 1)


def throughput_table(t: Throughput) -> str:
    head = (
        "| client | rounds | tokens | first token ms | last token ms | tokens/s | chunks "
        "| CPU ms per answer: worker / this process / emulator |"
    )
    lines = [head, _rule(head)]
    for name, answers in (("direct ChatOllama", t.direct), ("room client", t.room)):
        lines.append(
            f"| {name} | {len(answers)} | {t.tokens} "
            f"| {median(a.ttft_ms for a in answers):.1f} "
            f"| {median(a.total_s for a in answers) * 1000:.0f} "
            f"| {median(a.tokens_per_s for a in answers):.0f} "
            f"| {median(a.chunks for a in answers):.0f} "
            f"| {median(a.worker_cpu for a in answers) * 1000:.0f} / "
            f"{median(a.client_cpu for a in answers) * 1000:.0f} / "
            f"{median(a.emulator_cpu for a in answers) * 1000:.0f} |"
        )
    return "\n".join(lines)


def ttft_table(f: FirstToken) -> str:
    head = "| client | requests | tokens | p50 ms | p95 ms | min ms | max ms |"
    lines = [head, _rule(head)]
    for name, answers in (("direct ChatOllama", f.direct), ("room client", f.room)):
        values = [a.ttft_ms for a in answers]
        lines.append(
            f"| {name} | {len(values)} | {f.tokens} | {pct(values, 0.5):.1f} "
            f"| {pct(values, 0.95):.1f} | {min(values):.1f} | {max(values):.1f} |"
        )
    direct = [a.ttft_ms for a in f.direct]
    room = [a.ttft_ms for a in f.room]
    lines.append(
        f"| added (room - direct) | | | {pct(room, 0.5) - pct(direct, 0.5):.1f} "
        f"| {pct(room, 0.95) - pct(direct, 0.95):.1f} | | |"
    )
    return "\n".join(lines)


def stages_table(answers: list[Answer]) -> str:
    """When each frame of a room request reached the requester, after sending it."""
    names = {name for a in answers for name in a.marks}
    rows = sorted(
        ((name, [a.marks[name] for a in answers if name in a.marks]) for name in names),
        key=lambda row: median(row[1]),
    )
    head = "| frame at the requester (room) | p50 ms after the request | p95 ms |"
    lines = [head, _rule(head)]
    for name, values in rows:
        lines.append(f"| `{name}` | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} |")
    return "\n".join(lines)


def concurrency_table(c: Concurrency, stream_delay: int) -> str:
    head = (
        "| streams x listeners | tokens each | emulator delay ms | STREAM_DELAY ms | total s "
        "| ideal s | last first chunk s | peak concurrent | tokens/s aggregate | chunks "
        "| chunk frames delivered | lost | duplicates | wrong text | unfinished | errors "
        "| worker CPU | DB CPU | emulator CPU | load-gen CPU | machine busy |"
    )
    cpu = c.cpu
    errors = ", ".join(f"{code} {n}" for code, n in sorted(c.errors.items())) or "-"
    return "\n".join(
        [
            head,
            _rule(head),
            f"| {c.streams} x {c.listeners} | {c.tokens} | {c.token_delay_ms:g} "
            f"| {stream_delay} | {c.total_s:.1f} | {c.ideal_s:.1f} | {c.start_spread_s:.1f} "
            f"| {c.peak} | {c.tokens_per_s:.0f} | {c.chunks} | {c.delivered} | {c.lost} "
            f"| {c.duplicates} | {c.bad_text} | {c.unfinished} | {errors} "
            f"| {cpu.get('worker', 0):.0%} | {cpu.get('db', 0):.0%} "
            f"| {cpu.get('emulator', 0):.0%} | {cpu.get('client', 0):.0%} "
            f"| {cpu.get('machine', 0):.0%} |",
        ]
    )


def verdicts(t: Throughput, f: FirstToken, c: Concurrency) -> list[str]:
    ratio = median(a.tokens_per_s for a in t.room) / median(a.tokens_per_s for a in t.direct)
    added50 = pct([a.ttft_ms for a in f.room], 0.5) - pct([a.ttft_ms for a in f.direct], 0.5)
    added95 = pct([a.ttft_ms for a in f.room], 0.95) - pct([a.ttft_ms for a in f.direct], 0.95)
    clean = c.lost == 0 and c.duplicates == 0 and c.bad_text == 0 and c.unfinished == 0
    return [
        f"- Throughput: the room client gets {ratio:.0%} of the direct client's tokens/s "
        f"(medians, request to last token, {t.tokens}-token answers): target >= "
        f"{TARGET_RATIO:.0%} {'met' if ratio >= TARGET_RATIO else 'NOT met'}.",
        f"- Added time to first token: {added50:.1f} ms at p50 ({added95:.1f} ms at p95): "
        f"target <= {TARGET_ADDED_MS:.0f} ms at p50 "
        f"{'met' if added50 <= TARGET_ADDED_MS else 'NOT met'}.",
        f"- {c.streams} streams requested at once x {c.listeners} listeners on one worker "
        f"(at most {c.peak} running at the same moment): {c.lost} chunks lost, "
        f"{c.duplicates} doubled, {c.bad_text} listeners with a wrong text, {c.unfinished} "
        f"streams unfinished: target no chunk lost {'met' if clean else 'NOT met'}"
        + ("" if c.peak >= c.streams else f" (but only {c.peak} ran concurrently)")
        + f"; {c.total_s:.1f} s in all, {c.tokens_per_s:.0f} tokens/s aggregate.",
    ]


def marginal_us_per_token(t: Throughput, f: FirstToken, kind: str) -> float:
    """CPU per extra token: (long answer - short answer) / (their token difference), medians;
    what reading and forwarding a token costs, the per-answer start-up left out."""
    tokens = t.tokens - f.tokens
    if tokens <= 0:
        return 0.0
    if kind == "room":
        long, short = (median(a.worker_cpu for a in x) for x in (t.room, f.room))
    else:
        long, short = (median(a.client_cpu for a in x) for x in (t.direct, f.direct))
    return max(0.0, long - short) / tokens * 1e6


def interpretation(t: Throughput, f: FirstToken, c: Concurrency, issues: Counter) -> list[str]:
    notes = []
    room_first = median(a.ttft_ms for a in t.room)
    room_last = median(a.total_s for a in t.room) * 1000
    short_first = pct([a.ttft_ms for a in f.room], 0.5)
    direct_first = pct([a.ttft_ms for a in f.direct], 0.5)
    worker_us = marginal_us_per_token(t, f, "room")
    client_us = marginal_us_per_token(t, f, "direct")
    made = median(a.made_ms for a in t.direct + f.direct)
    ack = pct([a.marks["ack"] for a in f.room if "ack" in a.marks], 0.5)
    reading = (
        "so a long answer is read faster through the room than directly, which pays back "
        "some or all of the room's start-up"
        if worker_us < client_us
        else "so the room pays its start-up on top of reading no faster than directly"
    )
    notes.append(
        f"- Throughput: a {t.tokens}-token room answer's first chunk arrived after "
        f"{room_first:.0f} ms ({short_first:.0f} ms for a {f.tokens}-token answer) and the "
        f"rest followed within {room_last - room_first:.0f} ms, in "
        f"{median(a.chunks for a in t.room):.0f} chunks in all. With no delay in the emulator "
        "the whole answer waits in the worker's socket, and a task reading a ChatOllama "
        "stream with data waiting gives the event loop to other tasks only now and then "
        f"(measured here in one more direct answer: {t.turns[0]} turns for other tasks over "
        f"{t.tokens} tokens, up to {t.turns[1]:.0f} ms apart); so the runner reads the "
        "answer in a task of its own into a queue and gives the loop back every "
        "`READ_SLICE_S` of lines at hand, or at once after a line the stream waits for with "
        "nothing buffered (`llm/runner.py`): the first chunk's shared-state write and "
        "broadcast go out at once instead of after much of the answer, and the rest follow "
        "every `STREAM_DELAY` ms, each with what was read meanwhile. Reading a token costs "
        f"the worker about {worker_us:.0f} µs of CPU and the direct client {client_us:.0f} µs "
        f"(the CPU of a {t.tokens}-token answer minus a {f.tokens}-token one, per extra "
        "token): both read LangChain's public `ChatOllama.astream`, with its per-chunk "
        "callback bookkeeping and its merging of every chunk once the answer is read (the "
        "worker's with the built-in tools offered, `model_stream` in `llm/provider.py`); the "
        "worker adds the runner's queue and coalescing, and the room's shared-state write "
        f"and broadcast per chunk rather than per token, {reading}."
    )
    after_ack = short_first - ack - direct_first
    spent = (
        "and most of the added time is spent before the ack, checking and storing the request"
        if ack >= after_ack
        else f"and after it the first chunk took {after_ack:.0f} ms longer than the direct "
        "client's first token (the worker's own request to the model, the first chunk's "
        "shared-state write and its broadcast)"
    )
    stages = (
        f" The worker's profile over these requests (`--profile`: py-spy sampling it "
        f"{PROFILE_RATE} times a second, which costs it a few per cent; wall time, so "
        "waiting for a core on a busy machine counts as busy; per request means everything "
        f"a request caused, saving its answer included): {f.profile}."
        if f.profile
        else ""
    )
    notes.append(
        f"- Time to first token: {short_first:.1f} ms at p50 through a room against "
        f"{direct_first:.1f} ms direct. Before the worker asks the model, a request is "
        "throttled (Redis, a round trip) and takes a slot (Redis, a round trip), then one "
        "call in Channels' one shared database thread (`stream_open` in "
        "`llm/services/stream_records.py`) checks and stores it: it checks the membership "
        "and reads the session's agent id (one query; the agent itself is one more when the "
        "session has one) and the context (one query) (`stream_draft`), then stores the "
        "prompt, the empty assistant message and the `Stream` row in one transaction "
        "(`stream_record`, through `messages_store`: the seq "
        "statement, which also checks the membership, the members read, one INSERT of the "
        "messages, one of their events, one of the `Stream` row, and the commit); once "
        "committed each `message:new` is handed to the event loop to broadcast and queue "
        "for the members with no connection. Taking a pooled connection costs a round trip "
        "too: the pool's check (`CONN_HEALTH_CHECKS`). Back on the event loop the stream "
        "publishes its live record (Redis, a round trip), starts its task and the request "
        "is acked (`stream_request` in `llm/services/streams.py`); the task makes the "
        "client and asks the model, queues `stream:start` for the room without waiting, "
        "and writes each chunk to the shared state before broadcasting it "
        "(`llm/services/room_stream.py`). A stop request is left in the shared state by "
        "whoever asks; the stream's watcher looks for it every `STOP_POLL_S` "
        "(`llm/stream_state.py`), so starting a stream opens nothing for stopping it. The "
        f"ack reached the requester {ack:.0f} ms after the request and the first chunk "
        f"{short_first - ack:.0f} ms after the ack (p50s), against {direct_first:.0f} ms "
        "for the direct client's first token: the model is asked only once the request is "
        f"stored, so the time to the ack adds in full, {spent}. Making a `ChatOllama` took "
        f"the direct client {made:.1f} ms (median, outside its measured time: each of its "
        "two httpx clients loads the CA bundle into a TLS context of its own, even for an "
        "http URL); the platform's share one TLS context per process (`llm/provider.py`), "
        f"and its client is made in the stream's task, once the request is stored.{stages}"
    )
    cpu = c.cpu
    stream_s = median(c.stream_s)
    per_chunk = c.tokens_received / max(1, c.chunks)
    coalesced = (
        f"deltas are coalesced for up to `STREAM_DELAY` ms, and tokens {c.token_delay_ms:g} ms "
        "apart leave little to coalesce"
    )
    if per_chunk >= 1.2:
        coalesced += (
            ", except those that waited in a socket while the loop was behind: they were read "
            "while the previous chunk was written and went out together"
        )
    profile = (
        f" The worker's profile over this part (`--profile`, wall time): {c.profile}."
        if c.profile
        else ""
    )
    notes.append(
        f"- Concurrency: the {c.streams} requests went out at once but the worker starts "
        f"them one after the other (their database work queues through the one shared "
        f"thread): the last stream's "
        f"first chunk came {c.start_spread_s:.1f} s after the requests, and at most "
        f"{c.peak} streams were running at the same moment. A stream took {stream_s:.1f} s "
        f"from the request to its last chunk (median; the emulator's pacing is "
        f"{c.ideal_s:.1f} s): the event loop, which reads every answer and writes every "
        f"chunk to the shared state, the channel layer and the sockets (and looks for each "
        f"stream's stop request in the shared state every `STOP_POLL_S`), falls behind, so the "
        f"answers are read more slowly than the emulator sends them (the tokens wait in the "
        f"worker's sockets; none is dropped). {c.chunks} chunks carried {c.tokens_received} "
        f"tokens ({per_chunk:.1f} per chunk; {coalesced}). CPU over the part: worker "
        f"{cpu.get('worker', 0):.0%} of a core, this "
        f"process (every listener) {cpu.get('client', 0):.0%}, the emulator "
        f"{cpu.get('emulator', 0):.0%}, machine {cpu.get('machine', 0):.0%} busy.{profile}"
    )
    if cpu.get("machine", 0) > 0.9 and cpu.get("worker", 0) < 0.8:
        notes.append(
            f"- The machine was {cpu.get('machine', 0):.0%} busy during the concurrency part "
            f"while the worker, one process with one event loop, used "
            f"{cpu.get('worker', 0):.0%} of a core: on this shared machine it waited for a "
            "core as well as for its own loop, so its times are longer than an idle "
            "machine's would be."
        )
    if issues:
        notes.append(
            "- Worker log lines at WARNING or above: "
            + "; ".join(f"`{text}` x {n}" for text, n in issues.most_common(5))
        )
    return notes


def machine_line() -> str:
    extra = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("langchain-ollama", "ollama", "uvicorn")
    )
    return f"{machine()}, {extra}"


def plot(throughput: Throughput, first_token: FirstToken, path: Path) -> bool:
    """Time to first token as a CDF, room against direct (with the room's target: the
    direct p50 plus the allowed addition), and each round's tokens/s."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot")
        return False
    fig, (first, rate) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, answers, color in (
        ("direct ChatOllama", first_token.direct, "grey"),
        ("room client", first_token.room, "C0"),
    ):
        values = sorted(a.ttft_ms for a in answers)
        shares = [(i + 1) / len(values) for i in range(len(values))]
        first.step(values, shares, where="post", color=color, label=name)
    direct_p50 = pct([a.ttft_ms for a in first_token.direct], 0.5)
    first.axvline(direct_p50 + TARGET_ADDED_MS, color="red", linestyle="--",
                  label=f"target: direct p50 + {TARGET_ADDED_MS:.0f} ms")  # fmt: skip
    first.axhline(0.5, color="grey", linewidth=0.5)
    first.set_xlabel(f"ms from the request to the first chunk ({first_token.tokens}-token answers)")
    first.set_ylabel("share of requests (CDF)")
    first.set_title("Time to first token", fontsize=10)
    first.legend(fontsize=8, loc="lower right")
    for name, answers, color in (
        ("direct ChatOllama", throughput.direct, "grey"),
        ("room client", throughput.room, "C0"),
    ):
        rate.plot(range(1, len(answers) + 1), [a.tokens_per_s for a in answers], marker="o",
                  color=color, label=name)  # fmt: skip
    direct_median = median([a.tokens_per_s for a in throughput.direct])
    rate.axhline(direct_median * TARGET_RATIO, color="red", linestyle="--",
                 label=f"target: {TARGET_RATIO:.0%} of direct (median)")  # fmt: skip
    rate.set_xlabel(f"round ({throughput.tokens}-token answers, no delay in the emulator)")
    rate.set_ylabel("tokens/s, request to last token")
    rate.set_ylim(bottom=0)
    rate.set_title("Throughput", fontsize=10)
    rate.legend(fontsize=8, loc="lower right")
    for axis in (first, rate):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def section(
    results, settings: dict, command: str, started, seconds, load, plot_link: str | None = None
) -> str:
    throughput, first_token, concurrency, issues = results
    busy = ""
    if max(load) > 1.0:
        busy = (
            ". The machine was not idle: other processes competed for its two cores, so the "
            "absolute figures are pessimistic and vary from run to run"
        )
    return "\n".join(
        [
            "## Stream passthrough",
            "",
            "An LLM answer through a room against the same answer read directly: one daphne "
            "worker (`bench.settings_bench`, PostgreSQL + Redis with "
            f"`CHANNEL_LAYER={settings['CHANNEL_LAYER']}`, `AUTH_RATE=off`, `DEBUG=false`, "
            f"`STREAM_DELAY={settings['STREAM_DELAY']}`, "
            f"`MAX_CONCURRENT_STREAMS={settings['MAX_CONCURRENT_STREAMS']}`) has `OLLAMA_URL` "
            "pointed at the Ollama emulator (`llm.emulator.EmulatorServer`, in a process of "
            "its own). The room client is a member that sends `stream:request` over "
            "`/ws/chat/` and reads the `stream:chunk` frames; the direct client is "
            f'`ChatOllama(base_url=<emulator>, model="{MODEL}", num_predict={MAX_TOKENS})'
            ".astream(...)`, a new one per answer as the platform makes one per answer "
            "(the platform's also offers the built-in tools, a bigger request). Both in "
            "the benchmark's process on the standard asyncio loop, one answer at a time, "
            "alternating, except in the concurrency part. Each room answer is asked for in a "
            "fresh room (the model sees the same one-message context as the direct client) "
            "by a user still under the `stream:request` throttle (10 per minute), which is "
            "left as it is. Every answer's text is checked against what the emulator sent. "
            "All on one machine (loopback).",
            "",
            f"- Machine: {machine_line()}",
            f"- Command: `{command}`",
            f"- Date: {started:%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s",
            f"- Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}{busy}.",
            "",
            f"Throughput: {throughput.tokens}-token answers, no delay in the emulator; "
            "medians over the rounds; times from the request (calling `astream`, sending "
            "`stream:request`); tokens/s = tokens / last token ms.",
            "",
            throughput_table(throughput),
            "",
            f"Time to first token: {first_token.tokens}-token answers; request (calling "
            "`astream`, sending `stream:request`) to the first chunk.",
            "",
            ttft_table(first_token),
            "",
            "When each frame a room request causes reached the requester (its user message "
            "and the empty assistant message as `message:new`, the ack, `stream:start`, the "
            "first chunk), same requests:",
            "",
            stages_table(first_token.room),
            "",
            "Concurrency: all streams requested at once on one worker, every listener a "
            "connection of its own to that worker; total = first request to last "
            "`stream:complete`; ideal = the emulator's pacing of one answer; lost = chunk "
            "indexes a listener never got (each listener must get 0..N, the last "
            "`isComplete`, deltas adding up to the final `content` and to the emulator's "
            "text); CPU as shares of one core over the run of the part (DB: this run's "
            "PostgreSQL backends; Redis, shared, not counted).",
            "",
            concurrency_table(concurrency, settings["STREAM_DELAY"]),
            "",
            *(
                [f"![Stream passthrough: first token and throughput]({plot_link})", ""]
                if plot_link
                else []
            ),
            f"Targets (issue): room tokens/s >= {TARGET_RATIO:.0%} of the direct client's; "
            f"added time to first token <= {TARGET_ADDED_MS:.0f} ms at p50; 100 concurrent "
            "streams with 2 listeners each on one worker, no chunk lost.",
            "",
            *verdicts(throughput, first_token, concurrency),
            "",
            *interpretation(throughput, first_token, concurrency, issues),
            "",
        ]
    )


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="answer length, throughput")
    parser.add_argument("--rounds", type=int, default=7, help="throughput rounds per client")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured answers per client")
    parser.add_argument("--requests", type=int, default=30, help="first-token requests")
    parser.add_argument("--ttft-tokens", type=int, default=20, help="answer length, first token")
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams")
    parser.add_argument("--listeners", type=int, default=2, help="listeners per stream")
    parser.add_argument("--stream-tokens", type=int, default=400, help="tokens per stream")
    parser.add_argument(
        "--token-delay-ms", type=float, default=50.0, help="emulator delay between tokens"
    )
    parser.add_argument("--stream-delay", type=int, default=50, help="STREAM_DELAY of the worker")
    parser.add_argument(
        "--max-streams", type=int, default=200, help="MAX_CONCURRENT_STREAMS of the worker"
    )
    parser.add_argument("--layer", choices=("pubsub", "core"), default="pubsub")
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "plots" / "stream.png",
        help="where to draw the plot, with --write (needs matplotlib)",
    )  # fmt: skip
    add_service_options(parser)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="py-spy",
        help="record the worker with py-spy (this executable) in parts 1, 2 and 3",
    )
    parser.add_argument("--serve-emulator", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return
    if args.streams > args.max_streams:
        raise SystemExit("--streams above --max-streams would be refused with STREAM_LIMIT")
    if max(args.tokens, args.ttft_tokens, args.stream_tokens) > MAX_TOKENS:
        raise SystemExit(f"answers are cut at {MAX_TOKENS} tokens (num_predict)")
    if args.listeners < 1 or args.streams < 1 or args.rounds < 1 or args.requests < 1:
        raise SystemExit("--listeners, --streams, --rounds and --requests must be positive")

    if args.profile and not shutil.which(args.profile):
        raise SystemExit(f"--profile: {args.profile} not found (pip install py-spy)")
    started = datetime.now(UTC)
    clock = time.monotonic()
    load_start = os.getloadavg()[0]
    args.log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-logs-"))
    print(f"stream benchmark; worker logs in {args.log_dir}", flush=True)
    throughput, first_token, concurrency, issues, settings = run(args)
    seconds = time.monotonic() - clock
    load = (load_start, os.getloadavg()[0])

    print()
    print(throughput_table(throughput))
    print()
    print(ttft_table(first_token))
    print()
    print(stages_table(first_token.room))
    print()
    print(concurrency_table(concurrency, args.stream_delay))
    print()
    print("\n".join(verdicts(throughput, first_token, concurrency)))
    print("\n".join(interpretation(throughput, first_token, concurrency, issues)))
    print(f"\nrun time {seconds:.0f} s; load average at start / end {load[0]:.2f} / {load[1]:.2f}")
    if args.write:
        command = shlex.join(["python", "bench/stream.py", *(argv or sys.argv[1:])])
        results = (throughput, first_token, concurrency, issues)
        link = None
        if plot(throughput, first_token, args.plot):
            link = os.path.relpath(args.plot, Path(args.write).resolve().parent)
        write_section(
            args.write,
            "## Stream passthrough",
            section(results, settings, command, started, seconds, load, link),
        )
        print(f"wrote the Stream passthrough section of {args.write}")


if __name__ == "__main__":
    main()
