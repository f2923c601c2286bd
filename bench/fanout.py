"""Message fan-out through the real platform, against a python-socketio peer and a raw
``websockets`` broadcast server, in one run with the same clients.

    python bench/fanout.py                              # platform, socketio peer, raw relay
    python bench/fanout.py --write docs/benchmarks.md   # ... and record the numbers
    python bench/fanout.py --variants pubsub,pubsub:2   # ... one and two daphne workers
    python bench/fanout.py --variants pubsub,pubsub@uvicorn   # daphne against uvicorn
    python bench/fanout.py --variants pubsub,pubsub+unthrottled  # with and without throttle
    python bench/fanout.py --variants pubsub --peers "" --no-baseline --floors  # the floor
    python bench/fanout.py --before ../main   # ... each variant also on another checkout

Scenarios: (a) 1 room x 100 members, (b) 20 rooms x 10 members. Every member is a client of
its own (a registered user with a JWT) and every member sends: ``message:send`` over the
WebSocket, so each message goes through the service, the database, the session event log
and the channel layer, and comes back to every member of the room (the sender included) as
``message:new``. The clientId carries the sender's clock, so each receiver measures
send-to-receive latency itself (all clients live in this process: one clock).

Two phases per scenario and system:

* saturation: each room keeps as many messages in flight as it has members, each slot
  sending the room's next message once the copy of its last one came back to its sender.
  Deliveries/s is the number of ``message:new`` frames all members received inside the
  measuring window (after a warm-up) divided by its length.
* half load: messages paced at half the saturated message rate, from the rooms in turn;
  p50/p99/max of send-to-receive latency over every delivery after a short warm-up.

Senders: in both phases a room's members take turns (``Rotation``): each message of the
room goes from its next member, so all of them send equally often, whichever of them the
room's frames reach first. Every system is driven so, with or without a throttle.

Throttles: the platform allows 30 ``message:send`` per user per minute (CONTRACT section 3),
and so does the socketio peer. Against a system that applies it (a plain platform variant,
whose throttle counters start fresh under their own ``REALTIME_PREFIX``, and the peer), each
user sends at most 30 messages in a scenario: 22 at saturation, 8 at half load (with 20
rooms x 10 members, at most 220 messages a room at saturation). Where the turns run out
before a phase's planned end, the phase ends there and the report says so (``budget``
column): the saturation window is cut at that moment and its rate measured over what it
lasted, so a fast system is measured, not the throttle. A ``+unthrottled`` variant starts
its workers with ``BENCH_UNTHROTTLED=1``, which the benchmark settings
(``bench/settings_bench.py``) read to raise every per-user limit out of reach, and its
senders have no budget: it measures what the workers carry, as the raw relay, which has no
throttle, does.

Peers (``--peers``, ``socketio`` by default): another stack doing the same job on the same
machine. ``socketio`` is bench/socketio_peer.py (python-socketio's ASGI server under
uvicorn, one process, the stack Open WebUI runs): a token table for authentication, rooms
entered on connect, the same throttle counted in memory, one ``INSERT`` per message through
psycopg's async pool on a fresh PostgreSQL database, then one ``emit`` to the room; its
message objects have the platform's fields, so a delivery carries about as many bytes.
Its clients are not ``socketio.AsyncClient`` but Engine.IO v4 / Socket.IO v5 framing spoken
over the same ``websockets`` client the platform's and the raw relay's clients use
(``SocketIO``): the load generator shares two cores with the server under test, and the
AsyncClient (aiohttp underneath, a session and handler dispatch per client) spent clearly
more CPU per received frame than this client when both drove the peer at the same paced
rate, which would have lowered the peer's ceiling by the client's cost, not the peer's.
With one client for every system, what differs between the rows is the server.

The baseline is the same shape against a minimal ``websockets`` server (started from this
script in a process of its own) that relays each frame it receives to everyone in the
sender's room: no auth, no persistence, no channel layer. Its frames are padded to the size
of the platform's ``message:new`` frames.

Floors (``--floors``): what the fixed stack costs before any of the platform's own work.
``bench/floor_asgi.py`` on one daphne worker relays each frame as it came, driven as the raw
relay is, through a stock Channels consumer and the channels-redis pub/sub layer, without
and with one ``INSERT`` per message through Django's database layer (``+ insert``).

Variants: ``pubsub`` and ``core`` run the workers on a fresh PostgreSQL database and Redis
with ``CHANNEL_LAYER=pubsub|core``; ``memory`` is the embedded default (SQLite, in-memory
layer). A ``:N`` suffix runs N daphne workers (members spread over them, so frames cross
workers through Redis; ``pubsub:2`` for two); otherwise one worker, the same process count
as the peer and the baseline. ``--profile`` samples worker 0 with py-spy (``pip install
py-spy``) during each saturation window and says where its time went. Loopback only;
everything started here is stopped here; the defaults take about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform as host
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

if __package__ in (None, ""):  # run as ``python bench/fanout.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    server_command,
    start_worker,
    stop_process,
    uvicorn_command,
    wait_for_port,
    worker_env,
    write_section,
)

SEND_BUDGET = 30  # message:send per user per minute (CONTRACT section 3)
PACED_RESERVE = 8  # of each user's budget, kept for the half-load phase
PASSWORD = "pw-Bench-123456"
TARGET_RATIO = 0.30
TARGET_P99_MS = 50.0
PROFILE_RATE = 100  # py-spy samples per second (--profile)
perf = time.perf_counter


@dataclass(frozen=True)
class Scenario:
    key: str
    rooms: int
    members: int

    @property
    def label(self) -> str:
        return f"{self.rooms} x {self.members}"

    @property
    def clients(self) -> int:
        return self.rooms * self.members


SCENARIOS = {"a": Scenario("a", 1, 100), "b": Scenario("b", 20, 10)}

# The stack's floors (``--floors``, bench/floor_asgi.py): label -> its FLOOR_STORE.
FLOORS = {"channels": "0", "channels + insert": "1"}
# Peers (``--peers``): other stacks doing the platform's job, driven as the platform is.
PEERS = ("socketio",)


@dataclass(frozen=True)
class Variant:
    layer: str  # pubsub | core | memory | raw | floor | peer
    workers: int = 1
    server: str = "daphne"  # daphne | uvicorn
    throttled: bool = True  # False: every per-user limit raised (``+unthrottled``)
    name: str = ""  # a key of FLOORS (layer "floor") or one of PEERS (layer "peer")
    tree: str = ""  # another checkout whose workers run this variant (``--before``)

    @property
    def label(self) -> str:
        if self.layer in ("floor", "peer"):
            return f"{self.layer}: {self.name}"
        label = self.layer if self.workers == 1 else f"{self.layer} x{self.workers}"
        if self.server != "daphne":
            label = f"{label} {self.server}"
        label = label if self.throttled else f"{label} unthrottled"
        return f"{label} (before)" if self.tree else label


@dataclass
class Result:
    variant: Variant
    scenario: Scenario
    msgs_per_s: float = 0.0
    deliveries_per_s: float = 0.0
    sat_lost: int = 0
    sat_expected: int = 0
    sat_window: float = 0.0  # seconds the saturation window lasted (cut when budgets ran out)
    sat_cut: bool = False
    paced_rate: float = 0.0
    paced_seconds: float = 0.0  # seconds actually paced (cut when budgets ran out)
    paced_cut: bool = False
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    paced_lost: int = 0
    paced_expected: int = 0
    client_cpu: float = 0.0  # share of one core used by this process (the load generator)
    server_cpu: float = 0.0  # share of one core used by the server processes, summed
    db_cpu: float = 0.0  # share of one core used by this run's PostgreSQL backends
    machine_cpu: float = 0.0  # share of the whole machine busy
    server_us_per_delivery: float = 0.0  # server processes + PostgreSQL backends
    frame_bytes: float = 0.0
    errors: Counter = field(default_factory=Counter)
    error_texts: dict = field(default_factory=dict)  # code -> the first such error's text
    profile: str = ""  # where worker 0 spent the saturation window (--profile)
    log_issues: Counter = field(default_factory=Counter)  # the variant's worker log problems


@dataclass
class Phase:
    id: int
    window: tuple[float, float] = (0.0, 0.0)
    latency_from: float | None = None
    sent: int = 0
    expected: int = 0
    received: int = 0
    in_window: int = 0
    latencies: list[float] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the window ended early


@dataclass(eq=False)
class Member:
    index: int
    room: int
    room_size: int
    room_key: str  # session id (platform) or room path (baseline)
    user: dict | None = None
    ws: object = None
    reader: asyncio.Task | None = None
    sent: int = 0
    join: asyncio.Future | None = None


class Rotation:
    """Members taking turns to send: each message goes from the next member that has budget
    left, so every member sends as often as any other, whichever of them the room's frames
    reach first, and none meets the throttle before all of them do."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.cursor = 0

    def next(self, budget: float) -> Member | None:
        for _ in range(len(self.members)):
            member = self.members[self.cursor % len(self.members)]
            self.cursor += 1
            if member.sent < budget:
                return member
        return None


# --- the systems under test -----------------------------------------------------------------


class Platform:
    """The chat gateway: ``message:send`` in, ``message:new`` out."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        # clientIds must not repeat across variants that share a database (a repeated one
        # returns the first message and broadcasts nothing).
        self.tag = uuid.uuid4().hex[:8]

    async def open(self, member: Member, run: Run) -> None:
        worker = self.workers[member.index % len(self.workers)]
        ws = await connect(
            f"{worker.ws_url}?token={member.user['access']}",
            compression=None, max_size=2**22, ping_interval=None, open_timeout=30,
        )  # fmt: skip
        first = orjson.loads(await ws.recv(decode=False))
        if first.get("event") != "connection:success":
            raise RuntimeError(f"unexpected first frame {first}")
        member.ws = ws
        member.join = asyncio.get_running_loop().create_future()
        member.reader = asyncio.create_task(run.read(member))
        await ws.send(
            orjson.dumps(
                {"event": "session:join", "data": {"sessionId": member.room_key}, "ref": "join"}
            ).decode()
        )
        reply = await asyncio.wait_for(member.join, 30)
        if reply.get("event") != "ack":
            raise RuntimeError(f"session:join failed: {reply}")

    async def send(self, member: Member, phase: int, k: int) -> None:
        # The numbers travel in the clientId, which comes back as it was sent: the content
        # goes through the profanity filter, which masks some runs of digits as leetspeak
        # ("71 71" reads as a word it knows).
        frame = {
            "event": "message:send",
            "data": {
                "sessionId": member.room_key,
                "content": f"fanout {phase} {member.index} {k}",
                "clientId": f"{self.tag}-{phase}-{member.index}-{k}-{perf():.6f}",
            },
            "ref": f"{phase}:{k}",
        }
        await member.ws.send(orjson.dumps(frame).decode())

    @staticmethod
    def parse(raw: bytes, member: Member, run: Run):
        frame = orjson.loads(raw)
        event = frame.get("event")
        if event == "message:new":
            client_id = frame["data"]["message"].get("clientId") or ""
            if client_id.count("-") == 4:
                _, phase, sender, k, sent_at = client_id.split("-")
                return int(phase), int(sender), int(k), float(sent_at)
        elif event == "ack":
            if frame.get("ref") == "join" and member.join and not member.join.done():
                member.join.set_result(frame)
        elif event == "error":
            run.on_error(member, frame)
        return None


class Raw:
    """The baseline: a ``websockets`` server relaying each frame to the sender's room."""

    def __init__(self, port: int, frame_bytes: int) -> None:
        self.port = port
        self.pad = "x" * max(0, frame_bytes - 60)

    async def open(self, member: Member, run: Run) -> None:
        member.ws = await connect(
            f"ws://127.0.0.1:{self.port}/{member.room_key}",
            compression=None, max_size=2**22, ping_interval=None, open_timeout=30,
        )  # fmt: skip
        member.reader = asyncio.create_task(run.read(member))

    async def send(self, member: Member, phase: int, k: int) -> None:
        frame = {"p": phase, "s": member.index, "k": k, "t": perf(), "x": self.pad}
        await member.ws.send(orjson.dumps(frame).decode())

    @staticmethod
    def parse(raw: bytes, member: Member, run: Run):
        frame = orjson.loads(raw)
        return frame["p"], frame["s"], frame["k"], frame["t"]


class SocketIO:
    """The python-socketio peer (bench/socketio_peer.py), spoken to in Engine.IO v4 /
    Socket.IO v5 framing over the same ``websockets`` client as the other systems: the
    token in the namespace connect, ``message:send`` with an ack id that carries the phase
    and the message number, ``message:new`` back, pings answered."""

    ACK_SPAN = 1_000_000  # ack id = phase * ACK_SPAN + k

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        self.tag = uuid.uuid4().hex[:8]
        self.pongs: set[asyncio.Task] = set()

    async def open(self, member: Member, run: Run) -> None:
        ws = await connect(
            self.url, compression=None, max_size=2**22, ping_interval=None, open_timeout=30
        )
        opened = await ws.recv()
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open packet {opened!r}")
        await ws.send("40" + orjson.dumps({"token": member.user["token"]}).decode())
        connected = await ws.recv()
        if not connected.startswith("40"):
            raise RuntimeError(f"Socket.IO connect refused: {connected!r}")
        member.ws = ws
        member.reader = asyncio.create_task(run.read(member))

    async def send(self, member: Member, phase: int, k: int) -> None:
        data = {
            "sessionId": member.room_key,
            "content": f"fanout {phase} {member.index} {k}",
            "clientId": f"{self.tag}-{phase}-{member.index}-{k}-{perf():.6f}",
        }
        ack = phase * self.ACK_SPAN + k
        await member.ws.send(f"42{ack}" + orjson.dumps(["message:send", data]).decode())

    def parse(self, raw: bytes, member: Member, run: Run):
        if raw.startswith(b'42["message:new"'):
            client_id = orjson.loads(raw[2:])[1]["message"].get("clientId") or ""
            if client_id.count("-") == 4:
                _, phase, sender, k, sent_at = client_id.split("-")
                return int(phase), int(sender), int(k), float(sent_at)
        elif raw.startswith(b"43"):
            start = raw.index(b"[")
            reply = orjson.loads(raw[start:])[0]
            if "error" in reply:
                phase, k = divmod(int(raw[2:start]), self.ACK_SPAN)
                run.on_error(member, {"ref": f"{phase}:{k}", "data": reply["error"]})
        elif raw == b"2":  # the server's ping: the connection ends unless answered
            pong = asyncio.create_task(member.ws.send("3"))
            self.pongs.add(pong)
            pong.add_done_callback(self.pongs.discard)
        return None


async def serve_baseline(port: int) -> None:
    rooms: dict[str, set] = defaultdict(set)

    async def relay(ws) -> None:
        room = rooms[ws.request.path]
        room.add(ws)
        try:
            async for frame in ws:
                broadcast(room, frame)
        finally:
            room.discard(ws)

    async with serve(
        relay, "127.0.0.1", port, compression=None, max_size=262144, ping_interval=None
    ) as server:
        await server.serve_forever()


# --- one scenario against one system --------------------------------------------------------


class Run:
    def __init__(
        self, system, members: list[Member], server_pids: list[int], database: str | None
    ) -> None:
        self.system = system
        self.members = members
        self.server_pids = server_pids
        self.database = database
        self.phases: dict[int, Phase] = {}
        # (phase, sender, k) -> resolved when the sender gets its own message back
        self.echoes: dict[tuple[int, int, int], asyncio.Future] = {}
        self.errors: Counter = Counter()
        self.error_texts: dict[str, str] = {}
        self.frame_bytes = 0
        self.frames = 0

    async def read(self, member: Member) -> None:
        ws, parse, phases = member.ws, self.system.parse, self.phases
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                raw = await ws.recv(decode=False)
                now = perf()
                parsed = parse(raw, member, self)
                if parsed is None:
                    continue
                phase_id, sender, k, sent_at = parsed
                phase = phases.get(phase_id)
                if phase is None:
                    continue
                phase.received += 1
                self.frames += 1
                self.frame_bytes += len(raw)
                if phase.window[0] <= now < phase.window[1]:
                    phase.in_window += 1
                if phase.latency_from is not None and sent_at >= phase.latency_from:
                    phase.latencies.append(now - sent_at)
                if sender == member.index:
                    echo = self.echoes.pop((phase_id, sender, k), None)
                    if echo is not None and not echo.done():
                        echo.set_result(None)

    def on_error(self, member: Member, frame: dict) -> None:
        ref = frame.get("ref")
        code = frame["data"].get("code", "?")
        self.errors[code] += 1
        self.error_texts.setdefault(code, f"{frame['data'].get('message', '')} (ref {ref!r})")
        if isinstance(ref, str) and ":" in ref:
            phase_id, _, k = ref.partition(":")
            phase = self.phases.get(int(phase_id))
            if phase is not None:
                phase.expected -= member.room_size
            echo = self.echoes.pop((int(phase_id), member.index, int(k)), None)
            if echo is not None and not echo.done():
                echo.set_result(None)
        elif ref == "join" and member.join is not None and not member.join.done():
            member.join.set_result(frame)

    async def open_all(self) -> None:
        gate = asyncio.Semaphore(20)

        async def one(member: Member) -> None:
            async with gate:
                await self.system.open(member, self)

        await asyncio.gather(*(one(m) for m in self.members))

    async def close_all(self) -> None:
        async def one(member: Member) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(member.ws.close(), 5)
            if member.reader is not None:
                member.reader.cancel()

        await asyncio.gather(*(one(m) for m in self.members if m.ws is not None))

    def new_phase(self) -> Phase:
        phase = Phase(id=len(self.phases) + 1)
        self.phases[phase.id] = phase
        return phase

    async def _send(self, member: Member, phase: Phase) -> asyncio.Future:
        """Send the member's next message; the future resolves when its copy is back."""
        k = member.sent
        member.sent += 1
        phase.sent += 1
        phase.expected += member.room_size
        echo = asyncio.get_running_loop().create_future()
        self.echoes[(phase.id, member.index, k)] = echo
        await self.system.send(member, phase.id, k)
        return echo

    async def _closed_loop(self, rotation: Rotation, phase: Phase, budget: float) -> None:
        """One message of the room in flight at a time, each from the room's next sender."""
        end = phase.window[1]
        while perf() < end and not phase.closed.is_set():
            member = rotation.next(budget)
            if member is None:
                self._close(phase)
                return
            echo = await self._send(member, phase)
            with contextlib.suppress(TimeoutError):  # a lost frame: give up soon after the end
                await asyncio.wait_for(echo, max(0.5, end - perf() + 1))

    @staticmethod
    def _close(phase: Phase) -> None:
        """End the window now: a room's senders ran out of budget, so the rate from here on
        would measure the throttle, not the system."""
        if not phase.closed.is_set():
            start, end = phase.window
            phase.window = (start, max(start, min(end, perf())))
            phase.closed.set()

    async def _drain(self, phase: Phase, quiet: float = 3.0, limit: float = 30.0) -> None:
        start = last_change = perf()
        seen = phase.received
        while phase.received < phase.expected and perf() - start < limit:
            await asyncio.sleep(0.05)
            if phase.received != seen:
                seen, last_change = phase.received, perf()
            elif perf() - last_change > quiet:
                break

    def _cpu(self) -> tuple[float, float, dict[int, float], tuple[float, float], float]:
        backends = postgres_backends(self.database) if self.database else []
        return (
            time.process_time(),
            sum(cpu_seconds(pid) for pid in self.server_pids),
            {pid: cpu_seconds(pid) for pid in backends},
            machine_cpu(),
            perf(),
        )

    async def saturate(
        self, result: Result, warmup: float, duration: float, budget: float, profile=None
    ):
        phase = self.new_phase()
        start = perf()
        phase.window = (start + warmup, start + warmup + duration)
        end = phase.window[1]
        samples = []

        async def sample() -> None:
            await asyncio.sleep(warmup)
            samples.append(self._cpu())
            recording = None
            seconds = max(1, int(duration))
            if profile is not None:
                py_spy, out = profile
                recording = await asyncio.create_subprocess_exec(
                    py_spy, "record", "--pid", str(self.server_pids[0]), "--threads",
                    "--idle", "--rate", str(PROFILE_RATE), "--duration", str(seconds),
                    "--format", "raw", "--output", str(out),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(phase.closed.wait(), max(0.0, end - perf()))
            samples.append(self._cpu())
            if recording is not None:
                await recording.wait()
                result.profile = summarise_profile(profile[1])

        rooms: dict[int, list[Member]] = defaultdict(list)
        for member in self.members:
            rooms[member.room].append(member)
        # As many messages in flight per room as it has members, the senders taking turns.
        slots = [
            self._closed_loop(rotation, phase, budget)
            for rotation in (Rotation(room) for room in rooms.values())
            for _ in rotation.members
        ]
        await asyncio.gather(sample(), *slots)
        await self._drain(phase)
        (c0, s0, d0, (b0, t0), w0), (c1, s1, d1, (b1, t1), w1) = samples
        wall = max(w1 - w0, 1e-6)  # a window that the budget ended during the warm-up is empty
        db = sum(seconds - d0.get(pid, 0.0) for pid, seconds in d1.items())
        window = phase.window[1] - phase.window[0]
        result.sat_window = window
        result.sat_cut = phase.closed.is_set()
        result.deliveries_per_s = phase.in_window / window if window > 0 else 0.0
        result.msgs_per_s = result.deliveries_per_s / result.scenario.members
        result.sat_expected = phase.expected
        result.sat_lost = max(0, phase.expected - phase.received)
        result.client_cpu = (c1 - c0) / wall
        result.server_cpu = (s1 - s0) / wall
        result.db_cpu = db / wall
        result.machine_cpu = (b1 - b0) / max(1, t1 - t0)
        if phase.in_window:
            result.server_us_per_delivery = (s1 - s0 + db) / phase.in_window * 1e6

    async def pace(self, result: Result, rate: float, duration: float, budget: float) -> None:
        phase = self.new_phase()
        count = int(rate * duration)
        start = perf() + 0.05
        phase.latency_from = start + min(0.5, duration / 5)
        rotation = Rotation(self.members)  # interleaved by room: rooms and members in turn
        for j in range(count):
            delay = start + j / rate - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            member = rotation.next(budget)
            if member is None:
                result.paced_cut = True
                break
            await self._send(member, phase)
        result.paced_seconds = perf() - start
        await self._drain(phase)
        latencies = sorted(phase.latencies)
        result.paced_rate = rate
        result.paced_expected = phase.expected
        result.paced_lost = max(0, phase.expected - phase.received)
        if latencies:
            result.p50_ms = latencies[len(latencies) // 2] * 1000
            result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            result.max_ms = latencies[-1] * 1000


async def run_scenario(
    system,
    variant: Variant,
    scenario: Scenario,
    members: list[Member],
    server_pids,
    args,
    database: str | None = None,
) -> Result:
    result = Result(variant=variant, scenario=scenario)
    # Systems that apply the contract's throttle get senders that keep within it.
    throttled = isinstance(system, SocketIO) or (isinstance(system, Platform) and variant.throttled)
    budget = SEND_BUDGET if throttled else float("inf")
    run = Run(system, members, server_pids, database)
    try:
        await run.open_all()
        await asyncio.sleep(args.settle)
        profile = None
        if args.profile and isinstance(system, Platform):
            name = f"profile-{variant.label.replace(' ', '')}-{scenario.key}.txt"
            profile = (args.profile, args.log_dir / name)
        await run.saturate(result, args.warmup, args.duration, budget - PACED_RESERVE, profile)
        await asyncio.sleep(args.settle)
        rate = max(1.0, result.msgs_per_s / 2)
        await run.pace(result, rate, args.paced, budget)
    finally:
        await run.close_all()
    result.errors = run.errors
    result.error_texts = run.error_texts
    result.frame_bytes = run.frame_bytes / run.frames if run.frames else 0.0
    return result


SYNC_PARTS = (
    ("post-commit hand-off to the loop", ("broadcast_now",)),
    ("profanity filter", ("better_profanity",)),
    ("SQL, including waiting for the database", ("psycopg", "sqlite3", "CursorWrapper")),
    ("ORM, serializers and other Python", ("",)),  # the rest
)
LOOP_PARTS = (
    ("WebSocket framing and socket writes", ("autobahn", "untilConcludes", "writeSomeData")),
    ("channel layer", ("channels_redis", "channels/layers")),
    ("Redis state and throttles", ("redis/",)),
    ("consumers", ("chat/", "accounts/", "channels/")),
    ("event loop and other", ("",)),
)


def summarise_profile(path: Path) -> str:
    """Where a worker spent a py-spy ``raw --idle`` recording: the share of wall time its
    event loop and its sync (ORM) thread were busy, and on what. The loop is idle in
    ``select``; the sync thread is busy while it runs a ``sync_to_async`` call."""
    samples: dict[str, list[tuple[str, int]]] = defaultdict(list)
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        stack, _, count = line.rpartition(" ")
        thread, _, frames = stack.partition(";")
        samples[thread].append((frames, int(count)))
    loop = next((t for t in samples if "MainThread" in t), None)
    if loop is None:
        return ""
    total = sum(n for _, n in samples[loop])
    busy = {"loop": Counter(), "sync": Counter()}
    for frames, n in samples[loop]:
        if "select (selectors.py" not in frames.rsplit(";", 1)[-1]:
            busy["loop"][next(w for w, marks in LOOP_PARTS if any(m in frames for m in marks))] += n
    for rows in samples.values():
        if any("SyncToAsync.thread_handler" in frames for frames, _ in rows):
            for frames, n in rows:
                if "SyncToAsync.thread_handler" in frames:
                    what = next(w for w, marks in SYNC_PARTS if any(m in frames for m in marks))
                    busy["sync"][what] += n

    def share(kind: str) -> str:
        counter = busy[kind]
        detail = ", ".join(f"{what} {n / total:.0%}" for what, n in counter.most_common())
        return f"{sum(counter.values()) / total:.0%} ({detail})"

    return f"event loop busy {share('loop')}; sync (ORM) thread busy {share('sync')}"


# --- set-up: users, rooms, workers ----------------------------------------------------------


def members_for(scenario: Scenario, keys: list[str], users: list[dict] | None) -> list[Member]:
    """Members of each room, interleaved by room so round-robin sending visits every room."""
    members = []
    for slot in range(scenario.members):
        for room in range(scenario.rooms):
            offset = room * scenario.members + slot
            members.append(
                Member(
                    index=len(members),
                    room=room,
                    room_size=scenario.members,
                    room_key=keys[room],
                    user=users[offset] if users else None,
                )
            )
    return members


async def register(url: str, count: int, prefix: str) -> list[dict]:
    gate = asyncio.Semaphore(8)

    async def one(http: httpx.AsyncClient, i: int) -> dict:
        name = f"{prefix}{i}"
        async with gate:
            made = await http.post(
                "/api/auth/register", json={"username": name, "password": PASSWORD}
            )
            made.raise_for_status()
            tokens = await http.post(
                "/api/auth/token", json={"username": name, "password": PASSWORD}
            )
            tokens.raise_for_status()
        return {**made.json(), **tokens.json()}

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await asyncio.gather(*(one(http, i) for i in range(count)))


async def create_rooms(url: str, scenario: Scenario, users: list[dict]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        keys = []
        for room in range(scenario.rooms):
            group = users[room * scenario.members : (room + 1) * scenario.members]
            response = await http.post(
                "/api/chat/sessions",
                json={
                    "title": f"fanout {scenario.key}{room}",
                    "memberIds": [u["id"] for u in group[1:]],
                },
                headers={"Authorization": f"Bearer {group[0]['access']}"},
            )
            response.raise_for_status()
            keys.append(response.json()["id"])
        return keys


async def prepare(url: str, scenarios: list[Scenario]) -> dict[str, tuple[list, list]]:
    """Users and rooms of every scenario, through the REST API of one worker."""
    prepared = {}
    run_tag = uuid.uuid4().hex[:6]
    for scenario in scenarios:
        users = await register(url, scenario.clients, f"fan{scenario.key}{run_tag}_")
        prepared[scenario.key] = (users, await create_rooms(url, scenario, users))
    return prepared


def run_platform_group(
    layer_variants: list[Variant], scenarios: list[Scenario], args, log_dir: Path
) -> list[Result]:
    """Variants that share one fresh database (and so one set of users and rooms)."""
    results = []
    uses_redis = layer_variants[0].layer != "memory"
    database_url, drop = fresh_database(args.postgres_url if uses_redis else None)
    database = urlparse(database_url).path.lstrip("/") if uses_redis else None
    media = tempfile.mkdtemp(prefix="chat-bench-media-")
    try:
        base_env = worker_env(
            database_url=database_url,
            redis_url=args.redis_url if uses_redis else None,
            AUTH_RATE="off",
            DEBUG="false",
            LOG_LEVEL="WARNING",
            JWT_ACCESS_SECONDS="3600",
            MEDIA_ROOT=media,
        )
        migrate(base_env)
        prepared = None
        for variant in layer_variants:
            env = dict(base_env, REALTIME_PREFIX=f"chat-bench-{uuid.uuid4().hex[:8]}")
            if uses_redis:
                env["CHANNEL_LAYER"] = variant.layer
            if not variant.throttled:
                env["BENCH_UNTHROTTLED"] = "1"
            command = uvicorn_command if variant.server == "uvicorn" else server_command
            tree = Path(variant.tree) if variant.tree else ROOT
            workers = [start_worker(env, log_dir, command, tree) for _ in range(variant.workers)]
            try:
                if prepared is None:
                    prepared = asyncio.run(prepare(workers[0].url, scenarios))
                for scenario in scenarios:
                    users, keys = prepared[scenario.key]
                    members = members_for(scenario, keys, users)
                    pids = [w.process.pid for w in workers]
                    result = _run(
                        Platform(workers), variant, scenario, members, pids, args, database
                    )
                    results.append(result)
                    _progress(result)
            finally:
                for worker in workers:
                    stop_process(worker.process)
            issues = log_issues([w.log for w in workers])
            for result in results:
                if result.variant == variant:
                    result.log_issues = issues
    finally:
        drop()
        shutil.rmtree(media, ignore_errors=True)
    return results


def run_baseline(scenarios: list[Scenario], frame_bytes: int, args) -> list[Result]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)], cwd=ROOT
    )
    try:
        return _run_relayed(port, process, Variant("raw"), scenarios, frame_bytes, args)
    finally:
        stop_process(process)


def _run_relayed(
    port, process, variant, scenarios, frame_bytes, args, database=None
) -> list[Result]:
    """Each scenario against a server that relays every frame to the sender's room as it
    came (the raw relay, a floor), once it listens on ``port``."""
    wait_for_port(port, process)
    results = []
    for scenario in scenarios:
        keys = [f"room{room}" for room in range(scenario.rooms)]
        members = members_for(scenario, keys, None)
        system = Raw(port, frame_bytes)
        result = _run(system, variant, scenario, members, [process.pid], args, database)
        results.append(result)
        _progress(result)
    return results


def run_floors(scenarios: list[Scenario], frame_bytes: int, args, log_dir: Path) -> list[Result]:
    """The stack's floors: bench/floor_asgi.py on one daphne worker, on a fresh PostgreSQL
    database and Redis, driven as the raw relay is (the same frames, relayed as they came)."""
    import psycopg

    database_url, drop = fresh_database(args.postgres_url)
    database = urlparse(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE floor_message (id bigserial PRIMARY KEY, room text NOT NULL, "
            "body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    results = []
    try:
        for name, store in FLOORS.items():
            variant = Variant("floor", name=name)
            port = free_port()
            env = dict(
                os.environ, FLOOR_DATABASE_URL=database_url, FLOOR_REDIS_URL=args.redis_url,
                FLOOR_PREFIX=f"chat-bench-floor-{uuid.uuid4().hex[:8]}", FLOOR_STORE=store,
            )  # fmt: skip
            command = [
                sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
                "--websocket-max-message-size", "262144", "bench.floor_asgi:application",
            ]  # fmt: skip
            with open(log_dir / f"floor-{port}.log", "wb") as log:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                results += _run_relayed(
                    port, process, variant, scenarios, frame_bytes, args, database
                )
            finally:
                stop_process(process)
    finally:
        drop()
    return results


def run_peer(scenarios: list[Scenario], args, log_dir: Path) -> list[Result]:
    """The python-socketio peer (bench/socketio_peer.py) under uvicorn, one process, on a
    fresh PostgreSQL database; its users, their tokens and rooms handed to it in a file."""
    database_url, drop = fresh_database(args.postgres_url, prefix="chat_bench_peer_")
    database = urlparse(database_url).path.lstrip("/")
    prepared, tokens = {}, {}
    for scenario in scenarios:
        keys = [str(uuid.uuid4()) for _ in range(scenario.rooms)]
        users = []
        for offset in range(scenario.clients):
            user = {
                "id": len(tokens) + 1,
                "username": f"peer{scenario.key}{offset}",
                "token": secrets.token_urlsafe(16),
            }
            rooms = [keys[offset // scenario.members]]
            tokens[user["token"]] = {"id": user["id"], "username": user["username"], "rooms": rooms}
            users.append(user)
        prepared[scenario.key] = (users, keys)
    users_file = log_dir / "socketio-peer-users.json"
    users_file.write_bytes(orjson.dumps(tokens))
    port = free_port()
    env = dict(os.environ, PEER_DATABASE_URL=database_url, PEER_USERS=str(users_file))
    command = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--ws-max-size", "262144", "--no-access-log", "--log-level", "warning",
        "bench.socketio_peer:application",
    ]  # fmt: skip
    log_path = log_dir / f"socketio-peer-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    variant = Variant("peer", name="socketio")
    results = []
    try:
        wait_for_port(port, process, timeout=30)
        for scenario in scenarios:
            users, keys = prepared[scenario.key]
            members = members_for(scenario, keys, users)
            result = _run(SocketIO(port), variant, scenario, members, [process.pid], args, database)
            results.append(result)
            _progress(result)
    finally:
        stop_process(process)
        drop()
    issues = log_issues([log_path])
    for result in results:
        result.log_issues = issues
    return results


def _run(system, variant, scenario, members, pids, args, database=None) -> Result:
    async def main() -> Result:
        return await run_scenario(system, variant, scenario, members, pids, args, database)

    try:
        import uvloop  # the load generator should cost as little CPU as it can
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _progress(result: Result) -> None:
    print(
        f"  {result.variant.label:<24} {result.scenario.label:<9} "
        f"{result.deliveries_per_s:9.0f} deliveries/s  p99 {result.p99_ms:7.1f} ms "
        f"at {result.paced_rate:.0f} msg/s",
        flush=True,
    )


# --- report ---------------------------------------------------------------------------------


def percent(ratio: float) -> str:
    return f"{ratio:.1%}" if ratio < 0.1 else f"{ratio:.0%}"


def _budget(result: Result) -> str:
    """Where the senders' budget cut a phase short: the saturation window that was measured,
    the seconds of half load that were paced."""
    cuts = []
    if result.sat_cut:
        cuts.append(f"window {result.sat_window:.1f} s")
    if result.paced_cut:
        cuts.append(f"half load {result.paced_seconds:.1f} s")
    return ", ".join(cuts) or "-"


def _errors(result: Result) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(result.errors.items())) or "-"


def table(results: list[Result]) -> str:
    raw = {r.scenario.key: r for r in results if r.variant.layer == "raw"}
    head = (
        "| system | rooms x members | msgs/s | deliveries/s | vs raw | half-load msgs/s "
        "| p50 ms | p99 ms | max ms | lost (sat / half) | budget | errors | bytes / delivery "
        "| worker CPU | DB CPU | CPU µs / delivery | vs raw per CPU | load-gen CPU "
        "| machine busy |"
    )
    lines = [head, _rule(head)]
    for r in results:
        baseline = raw.get(r.scenario.key)
        ratio = per_cpu = "-"
        if baseline and r.variant.layer != "raw" and baseline.deliveries_per_s:
            ratio = percent(r.deliveries_per_s / baseline.deliveries_per_s)
            if r.server_us_per_delivery:
                per_cpu = percent(baseline.server_us_per_delivery / r.server_us_per_delivery)
        db = f"{r.db_cpu:.0%}" if r.variant.layer in ("pubsub", "core", "floor", "peer") else "-"
        lines.append(
            f"| {r.variant.label} | {r.scenario.label} | {r.msgs_per_s:.0f} "
            f"| {r.deliveries_per_s:.0f} | {ratio} | {r.paced_rate:.0f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} "
            f"| {r.sat_lost} / {r.paced_lost} | {_budget(r)} | {_errors(r)} "
            f"| {r.frame_bytes:.0f} | {r.server_cpu:.0%} | {db} "
            f"| {r.server_us_per_delivery:.0f} | {per_cpu} "
            f"| {r.client_cpu:.0%} | {r.machine_cpu:.0%} |"
        )
    return "\n".join(lines)


def _rule(head: str) -> str:
    return "|" + " --- |" * (head.count("|") - 1)


def verdicts(results: list[Result]) -> list[str]:
    raw = {r.scenario.key: r for r in results if r.variant.layer == "raw"}
    lines = []
    for r in results:
        baseline = raw.get(r.scenario.key)
        if r.variant.layer in ("raw", "floor", "peer") or not baseline:
            continue
        if not baseline.deliveries_per_s:
            continue
        ratio = r.deliveries_per_s / baseline.deliveries_per_s
        ok_ratio = "met" if ratio >= TARGET_RATIO else "NOT met"
        ok_p99 = "met" if 0 < r.p99_ms <= TARGET_P99_MS else "NOT met"
        per_cpu = ""
        if r.server_us_per_delivery:
            per_cpu = (
                f" ({percent(baseline.server_us_per_delivery / r.server_us_per_delivery)} per "
                "CPU second)"
            )
        lines.append(
            f"- {r.variant.label}, {r.scenario.label}: {percent(ratio)} of the baseline's "
            f"deliveries/s{per_cpu}: target >= {TARGET_RATIO:.0%} {ok_ratio}; p99 "
            f"{r.p99_ms:.1f} ms at half load: target <= {TARGET_P99_MS:.0f} ms {ok_p99}"
        )
    return lines


def interpretation(results: list[Result]) -> list[str]:
    notes = []
    raw = [r for r in results if r.variant.layer == "raw"]
    if raw and max(max(r.client_cpu, r.machine_cpu) for r in raw) > 0.85:
        notes.append(
            "- During the baseline runs the machine was "
            f"{max(r.machine_cpu for r in raw):.0%} busy and the load generator (one Python "
            f"process holding every client) used up to {max(r.client_cpu for r in raw):.0%} "
            "of a core: the raw server shares the cores with its clients, so its figure is a "
            "lower bound of what it can relay and the ratios are, if anything, flattering to "
            "the platform."
        )
    by_variant: dict[Variant, list[Result]] = defaultdict(list)
    for r in results:
        if r.variant.layer not in ("raw", "floor", "peer"):
            by_variant[r.variant].append(r)
    spans = [
        f"{variant.label} {min(r.msgs_per_s for r in rows):.0f}-"
        f"{max(r.msgs_per_s for r in rows):.0f} msgs/s"
        for variant, rows in by_variant.items()
        if len(rows) > 1
    ]
    if spans:
        notes.append(
            "- The platform's ceiling is a message rate, nearly whatever the room size ("
            + ", ".join(spans)
            + "): its cost is per message (a transaction, the event log, the broadcast), so "
            "small rooms deliver far fewer frames per second, while the raw relay's cost is "
            "per delivered frame."
        )
    platform = [r for r in results if r.variant.layer != "raw" and r.server_us_per_delivery]
    if platform:
        costs = ", ".join(
            f"{r.variant.label} {r.scenario.label}: {r.server_us_per_delivery:.0f} µs"
            for r in platform
        )
        raw_costs = ", ".join(f"{r.scenario.label}: {r.server_us_per_delivery:.0f} µs" for r in raw)
        notes.append(
            "- CPU per delivered frame at saturation (the server processes plus, on PostgreSQL, "
            f"this run's database backends; Redis, shared with other users, not counted): {costs}."
            + (f" The raw relay: {raw_costs}." if raw else "")
            + " Measured in CPU rather than wall time, the comparison (`vs raw per CPU`) "
            "depends much less on what else the machine is doing."
        )
    peers = {(r.variant.name, r.scenario.key): r for r in results if r.variant.layer == "peer"}
    for name in dict.fromkeys(name for name, _ in peers):
        against = [
            f"{r.variant.label} {r.scenario.label}: "
            f"{percent(r.deliveries_per_s / peer.deliveries_per_s)} of its deliveries/s, p99 "
            f"{r.p99_ms:.1f} ms against {peer.p99_ms:.1f} ms"
            for rows in by_variant.values()
            for r in rows
            if (peer := peers.get((name, r.scenario.key))) and peer.deliveries_per_s
        ]
        if against:
            notes.append(
                f"- The platform against the {name} peer (the same clients, rooms and sender "
                "rotation; the peer applies the platform's 30/min throttle, stores each message "
                "with one INSERT and emits it to the room: no event log, no channel layer, one "
                "process): " + "; ".join(against) + "."
            )
    floors = [r for r in results if r.variant.layer == "floor"]
    raw_by_scenario = {r.scenario.key: r for r in raw}
    if floors and raw_by_scenario:
        notes.append(
            "- The stack's floors (`--floors`, bench/floor_asgi.py: no authentication, "
            "validation, throttle or event log; relayed as the raw relay relays) against the "
            "raw relay: "
            + ", ".join(
                f"{r.variant.label} {r.scenario.label}: "
                f"{percent(r.deliveries_per_s / raw_by_scenario[r.scenario.key].deliveries_per_s)}"
                for r in floors
                if raw_by_scenario.get(r.scenario.key)
            )
            + "."
        )
    profiled = [r for r in results if r.profile]
    if profiled:
        notes.append(
            "- Where worker 0 spent the saturation window (`--profile`: py-spy sampling it "
            f"{PROFILE_RATE} times a second, pausing it to read its stacks, which lowers its "
            "rates: on 22 Nov the same code carried about twice as much in the next run "
            "without it, so take the shares here, and the rates from a run without "
            "`--profile`; shares of wall time, the sync thread being the one that runs every "
            "`database_sync_to_async` call of the process):"
        )
        notes += [f"  - {r.variant.label} {r.scenario.label}: {r.profile}" for r in profiled]
    seen = set()
    for r in results:
        if r.log_issues and r.variant not in seen:
            seen.add(r.variant)
            notes.append(
                f"- Worker log lines at WARNING or above, {r.variant.label}: "
                + "; ".join(f"`{text}` x {n}" for text, n in r.log_issues.most_common(5))
            )
    for r in results:
        for code, text in r.error_texts.items():
            notes.append(
                f"- {r.variant.label} {r.scenario.label}: {r.errors[code]} `{code}` "
                f"error repl{'y' if r.errors[code] == 1 else 'ies'}, the first: {text}"
            )
    lost = [r for r in results if r.sat_lost or r.paced_lost]
    if lost:
        notes.append(
            "- Frames lost (the channel layer is at-most-once; clients replay by seq): "
            + ", ".join(
                f"{r.variant.label} {r.scenario.label}: {r.sat_lost + r.paced_lost} of "
                f"{r.sat_expected + r.paced_expected}"
                for r in lost
            )
            + "."
        )
    budget = [r for r in results if r.sat_cut or r.paced_cut]
    if budget:
        notes.append(
            "- The senders of a throttled system keep within 30 message:send per user per "
            "minute, taking turns in each room; where that budget ran out before a phase's "
            "planned end (budget column) the saturation window ended there, so its rate is "
            "measured over that shorter window, and the half-load phase paced fewer messages "
            "(its percentiles are over those)."
        )
    return notes


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in VERSIONS if _installed(name)
    )
    return (
        f"{os.cpu_count()} cores ({model or host.machine()}), {host.system()} "
        f"{host.release()}, Python {host.python_version()}; {versions}"
    )


VERSIONS = (
    "django", "channels", "channels-redis", "daphne", "websockets", "uvicorn", "python-socketio",
    "psycopg",
)  # fmt: skip
METHOD = (
    "Messages sent with `message:send` over the WebSocket by room members go through the "
    "service, the database, the session event log and the channel layer to every member of "
    "the room (sender included) as `message:new`. Deliveries/s: `message:new` frames received "
    "by all members per second at saturation, with as many messages of a room in flight as "
    "it has members, its members taking turns to send. Latency: send-to-receive at each "
    "receiver (the clientId carries the sender's clock), with messages paced at half the "
    "saturated rate. The baseline (`raw`) is a minimal `websockets` server that relays each "
    "frame to everyone in the sender's room (no auth, no persistence), driven the same way "
    "with frames of the same size. `pubsub`/`core`: PostgreSQL + Redis with "
    "`CHANNEL_LAYER=pubsub|core`; `memory`: the embedded default (SQLite, in-memory layer); "
    "`xN`: N daphne workers, else one. Workers run `bench.settings_bench` (the local settings "
    "with a fast password hasher, so registering the users is quick, and Redis key prefixes "
    "of their own) with `AUTH_RATE=off` and `DEBUG=false`. The `message:send` throttle (30 "
    "per user per minute) is left as it is in the plain variants, whose senders keep within "
    "it: a room's members take turns, each sending at most 22 messages at saturation and 8 "
    "at half load, and where that runs out before a phase's planned end the phase ends there "
    "(`budget` column); `unthrottled` variants run with every per-user limit raised through "
    "the benchmark settings (`BENCH_UNTHROTTLED=1`) and no budget, to measure what the "
    "workers carry. `peer: socketio` (`--peers socketio`) is the same job on the stack Open "
    "WebUI runs, bench/socketio_peer.py: python-socketio's `AsyncServer` (ASGI) under "
    "uvicorn, one process, authenticating each connection by a token looked up in a table "
    "the benchmark hands it (held in memory: no JWT, no user row), entering the user's rooms "
    "on connect, counting the same throttle per user in memory, and storing each message "
    "with one `INSERT` (psycopg's async pool, autocommit, a fresh PostgreSQL database) before "
    "one `emit` to the room; its messages have the platform's fields, so a delivery carries "
    "about as many bytes (`bytes / delivery`); its clients speak Engine.IO/Socket.IO "
    "framing over the same `websockets` client and senders as the platform's. `floor: ...` "
    "rows (`--floors`) are not the platform but the stack's floor, bench/floor_asgi.py on "
    "one daphne worker: a stock Channels consumer relaying each frame as it came through "
    "the channels-redis pub/sub layer, without and with one `INSERT` per message "
    "(`+ insert`); no authentication, validation, throttle or event log. All clients run in "
    "one process on the same machine (loopback)."
)


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def section(
    results: list[Result],
    command: str,
    started: datetime,
    seconds: float,
    load: tuple,
    plot_link: str | None = None,
) -> str:
    busy = ""
    if max(load) > 1.0:
        busy = (
            ". The machine was not idle: other processes competed for its two cores, so the "
            "absolute figures are pessimistic and vary from run to run; the ratios and where "
            "the time goes are steadier."
        )
    parts = [
        "## Fan-out",
        "",
        METHOD,
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s",
        f"- Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}; `machine "
        f"busy` counts every process on the machine, this benchmark's and any other's{busy}",
        "",
        table(results),
        "",
        *([f"![Fan-out: deliveries/s and latency]({plot_link})", ""] if plot_link else []),
        "Targets (issue): at least 30% of the baseline's deliveries/s; p99 <= 50 ms at half load.",
        "",
        *verdicts(results),
        "",
        *interpretation(results),
        "",
    ]
    return "\n".join(parts)


def plot(results: list[Result], path: Path) -> bool:
    """Deliveries/s (log scale, the target at 30% of the raw relay) and half-load latency
    (p50 bar, p99 tick, the 50 ms target) for each system, one column per scenario."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot")
        return False
    scenarios = list(dict.fromkeys(r.scenario.label for r in results))
    fig, grid = plt.subplots(2, len(scenarios), figsize=(6 * len(scenarios), 8), squeeze=False)
    for column, label in enumerate(scenarios):
        rows = [r for r in results if r.scenario.label == label]
        names = [r.variant.label for r in rows]
        colors = [
            {"raw": "grey", "floor": "C1", "peer": "C2"}.get(r.variant.layer, "C0") for r in rows
        ]
        top, bottom = grid[0][column], grid[1][column]
        top.barh(names, [r.deliveries_per_s for r in rows], color=colors)
        raw = next((r.deliveries_per_s for r in rows if r.variant.layer == "raw"), None)
        if raw:
            top.axvline(raw * TARGET_RATIO, color="red", linestyle="--", label="target: 30% of raw")
            top.legend(fontsize=8, loc="lower right")
        top.set_xscale("log")
        top.set_xlabel("deliveries/s at saturation (log scale)")
        top.set_title(f"{label}: deliveries/s", fontsize=10)
        bottom.barh(names, [r.p50_ms for r in rows], color=colors, alpha=0.6, label="p50")
        bottom.scatter([r.p99_ms for r in rows], names, color="black", marker="|", s=200,
                       label="p99")  # fmt: skip
        bottom.axvline(TARGET_P99_MS, color="red", linestyle="--", label="target p99")
        bottom.set_xlabel("send-to-receive ms at half load")
        bottom.set_title(f"{label}: latency at half the saturated rate", fontsize=10)
        bottom.legend(fontsize=8, loc="lower right")
        for axis in (top, bottom):
            axis.invert_yaxis()
            axis.tick_params(axis="y", labelsize=8)
            axis.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --- command line ---------------------------------------------------------------------------


def parse_variants(text: str) -> list[Variant]:
    variants = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        item, _, flag = item.partition("+")
        if flag not in ("", "unthrottled"):
            raise SystemExit(f"unknown flag {flag!r}: +unthrottled")
        item, _, server = item.partition("@")
        layer, _, workers = item.partition(":")
        if layer not in ("pubsub", "core", "memory"):
            raise SystemExit(f"unknown variant {item!r}: pubsub, core or memory, with :N")
        if server not in ("", "daphne", "uvicorn"):
            raise SystemExit(f"unknown server {server!r}: daphne or uvicorn")
        count = int(workers or 1)
        if layer == "memory" and count != 1:
            raise SystemExit("the in-memory layer serves one worker only")
        variants.append(Variant(layer, count, server or "daphne", throttled=not flag))
    return variants


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="pubsub",
        help="comma list of pubsub|core|memory, each with an optional :WORKERS (pubsub:2: "
        "two daphne workers), @uvicorn (default: daphne) and +unthrottled; empty for none",
    )
    parser.add_argument(
        "--peers",
        default="socketio",
        help="comma list of other stacks run alongside (socketio: bench/socketio_peer.py); "
        "empty for none",
    )
    parser.add_argument("--scenarios", default="a,b", help="a (1 x 100) and/or b (20 x 10)")
    parser.add_argument("--members", type=int, help="members per room (overrides scenarios)")
    parser.add_argument("--rooms", type=int, help="rooms (with --members: one custom scenario)")
    parser.add_argument("--warmup", type=float, default=1.0, help="saturation warm-up, s")
    parser.add_argument("--duration", type=float, default=5.0, help="saturation window, s")
    parser.add_argument("--paced", type=float, default=5.0, help="half-load phase, s")
    parser.add_argument("--settle", type=float, default=1.0, help="pause between phases, s")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of another commit (with its own .venv, or this one's): each platform "
        "variant also runs on its workers, right after, on the same database, labelled "
        "(before); its migrations must be this one's",
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="also run the stack's floor (bench/floor_asgi.py): a stock Channels relay, "
        "without and with an INSERT per message",
    )
    add_service_options(parser)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="py-spy",
        help="record worker 0 with py-spy (this executable) during each saturation window",
    )
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "plots" / "fanout.png",
        help="where to draw the plot, with --write (needs matplotlib)",
    )  # fmt: skip
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_baseline:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_baseline(args.serve_baseline))
        return

    if args.members or args.rooms:
        scenarios = [Scenario("c", args.rooms or 1, args.members or 100)]
    else:
        scenarios = [SCENARIOS[key.strip()] for key in args.scenarios.split(",") if key.strip()]
    if any(s.members > SEND_BUDGET * 1000 for s in scenarios):
        raise SystemExit("too many members")
    variants = parse_variants(args.variants)
    if args.before:
        tree = str(args.before.resolve())
        variants = [v for variant in variants for v in (variant, replace(variant, tree=tree))]
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    if unknown := set(peers) - set(PEERS):
        raise SystemExit(f"unknown peer {', '.join(sorted(unknown))}: {', '.join(PEERS)}")
    if "socketio" in peers and not _installed("python-socketio"):
        raise SystemExit('the socketio peer needs python-socketio: pip install -e ".[bench]"')
    started = datetime.now(UTC)
    clock = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-logs-"))
    load_start = os.getloadavg()[0]
    args.log_dir = log_dir
    if args.profile and not shutil.which(args.profile):
        raise SystemExit(f"--profile: {args.profile} not found (pip install py-spy)")
    print(f"fan-out benchmark; worker logs in {log_dir}", flush=True)

    results: list[Result] = []
    redis_variants = [v for v in variants if v.layer != "memory"]
    if redis_variants:
        results += run_platform_group(redis_variants, scenarios, args, log_dir)
    for variant in (v for v in variants if v.layer == "memory"):
        results += run_platform_group([variant], scenarios, args, log_dir)
    sizes = [r.frame_bytes for r in results if r.frame_bytes]
    frame_bytes = round(sum(sizes) / len(sizes)) if sizes else 600
    if args.floors:
        results += run_floors(scenarios, frame_bytes, args, log_dir)
    if "socketio" in peers:
        results += run_peer(scenarios, args, log_dir)
    if not args.no_baseline:
        results += run_baseline(scenarios, frame_bytes, args)

    seconds = time.monotonic() - clock
    print()
    print(table(results))
    print()
    print("\n".join(verdicts(results) + interpretation(results)))
    print(f"\nworker logs in {log_dir}")
    load = (load_start, os.getloadavg()[0])
    print(f"\nrun time {seconds:.0f} s; load average at start / end {load[0]:.2f} / {load[1]:.2f}")
    if args.write:
        command = shlex.join(["python", "bench/fanout.py", *(argv or sys.argv[1:])])
        link = None
        if plot(results, args.plot):
            link = os.path.relpath(args.plot, Path(args.write).resolve().parent)
        text = section(results, command, started, seconds, load, link)
        write_section(args.write, "## Fan-out", text)
        print(f"wrote the Fan-out section of {args.write}")


# A log record's first line: Django's and daphne's formats, and uvicorn's ("ERROR:    ...").
LOG_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d |\d+\.\d+\.\d+\.\d+:\d+ |[A-Z]+: )")


def log_issues(logs: list[Path]) -> Counter:
    """Worker log records at WARNING or above, each with the exception that ended its
    traceback, if any (ids folded so repeats count together)."""
    issues: Counter = Counter()
    for log in logs:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not re.search(r"(^| )(WARNING|ERROR|CRITICAL)[: ]", line):
                continue
            if "Unauthorized: /api/auth/me" in line:  # the readiness probe
                continue
            text, cause = line.split(" ", 3)[-1], ""
            while i < len(lines) and not LOG_RECORD.match(lines[i]):
                candidate = lines[i]
                i += 1
                skip = ("Traceback", "During handling", "The above exception")
                if candidate and not candidate[0].isspace() and not candidate.startswith(skip):
                    cause = candidate
            if cause:
                text = f"{text} ({cause})"
            issues[re.sub(r"[0-9a-f]{32}", "<id>", text)[:200]] += 1
    return issues


if __name__ == "__main__":
    main()
