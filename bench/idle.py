"""Idle WebSocket connections held by one daphne worker, against a raw ``websockets`` server.

    python bench/idle.py                                # 10,000 connections, pubsub layer
    python bench/idle.py --write docs/benchmarks.md     # ... and record the numbers
    python bench/idle.py --connections 2000 --layer memory --hold 5

A handful of users register over REST (``AUTH_RATE=off``); their access JWTs are reused, so
each user has many connections (as a user with many tabs and devices has). N connections
are opened to ``/ws/chat/?token=...`` on ONE daphne worker, at most ``--concurrency``
handshakes in flight; a connection counts as open once its first frame,
``connection:success``, has arrived (so authentication, presence and the user's channel
group are done). Then nothing is sent for ``--hold`` seconds (long enough for the
platform's presence heartbeat, every 15 s, and the servers' pings, every 20 s, to run).

* connect rate: N / the time from the first handshake started to the last first frame in;
* memory per connection: (the server process's RSS after the hold - its RSS before the
  first of the N connections) / N, RSS being ``VmRSS`` of /proc/<pid>/status. Both servers
  are warmed up first (a few connections opened and closed) so one-off imports, pools and
  caches are not counted;
* held: connections still open at the end of the hold; idle CPU: the server's CPU during
  the hold (the cost of doing nothing: heartbeats, pings);
* where the memory goes: a census of the Python objects each server holds per connection,
  and, in one more platform run of ``--trace`` connections (1,000) with ``tracemalloc``
  on, the bytes still allocated per connection by the code that allocated them (the
  server, Channels, the channel layer, this project's modules).

The baseline is a minimal ``websockets`` server, started from this script in a process of
its own, that sends a first frame of the same size on connect and then holds the socket
open; it is driven by the same client code, at the same concurrency, with the same N. No
permessage-deflate on either side (daphne does not negotiate it; the client does not offer
it to the baseline either). The worker runs ``bench.settings_bench`` with ``AUTH_RATE=off``,
``DEBUG=false``, a one-hour access token lifetime and a Redis prefix of its own; ``pubsub``
and ``core`` use a fresh PostgreSQL database and Redis, ``memory`` the embedded default.
The open-file limit is raised in this process before anything is started, so the worker
and the baseline server inherit it. Loopback only; everything started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

if __package__ in (None, ""):  # run as ``python bench/idle.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout import log_issues, machine, register
from bench.servers import (
    ROOT,
    add_service_options,
    cpu_seconds,
    free_port,
    fresh_database,
    migrate,
    raise_fd_limit,
    rss_kib,
    server_command,
    start_worker,
    stop_process,
    uvicorn_command,
    wait_for_port,
    worker_env,
    write_section,
)

HEADING = "## Idle connections"
TARGET_HELD = 10_000
TARGET_MEMORY_RATIO = 2.5
WARMUP_CONNECTIONS = 20
# The traced run: frames kept per allocation (enough to get out of asyncio and the standard
# library to the code that asked), and fewer handshakes in flight, as tracing slows the worker.
TRACE_FRAMES = 12
TRACE_CONCURRENCY = 5
# Whose per-connection memory is whose, for the notes: the server's own connection objects
# (not this project's to change), Channels, the channel layer, the ORM and the JWT library.
SERVER_PACKAGES = ("daphne", "twisted", "autobahn", "txaio", "uvicorn", "websockets")
SERVERS = {"daphne": server_command, "uvicorn": uvicorn_command}
# The stock channel layer each ``--layer`` runs (``chatproject.settings``), for the notes.
LAYER_NAMES = {
    "pubsub": "channels-redis' `RedisPubSubChannelLayer`",
    "core": "channels-redis' `RedisChannelLayer`",
    "memory": "Channels' `InMemoryChannelLayer`",
}
perf = time.perf_counter


@dataclass
class Result:
    system: str
    connections: int
    opened: int = 0
    failed: int = 0
    failure: str = ""
    held: int = 0
    connect_seconds: float = 0.0
    handshake_ms: list[float] = field(default_factory=list)
    rss_before: int = 0  # KiB
    rss_held: int = 0  # KiB
    idle_cpu: float = 0.0  # share of one core used by the server during the hold
    client_cpu: float = 0.0  # share of one core used by this process while connecting
    first_frame: int = 0  # bytes
    ramp: list[tuple[float, int, int]] = field(default_factory=list)  # (s, open, RSS KiB)
    server_cpu: float = 0.0  # CPU seconds the server spent while the N connections opened
    log_issues: Counter = field(default_factory=Counter)  # the worker's log, up to the end
    teardown_issues: Counter = field(default_factory=Counter)  # ... and after it
    log_mark: int = 0  # the worker log's size when the hold ended
    log_path: Path | None = None
    census: dict = field(default_factory=dict)  # type -> (objects, bytes) per connection
    census_dir: Path | None = None
    window: tuple[float, float] = (0.0, 0.0)  # wall clock: first handshake, end of the hold
    collections: list = field(default_factory=list)  # full GCs in the window: (start, s)
    concurrency: int = 0
    # The traced run (tracemalloc): (owner, bytes per connection), (file:line, bytes per conn)
    owners: list = field(default_factory=list)
    sites: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.opened / self.connect_seconds if self.connect_seconds else 0.0

    @property
    def cpu_ms_per_connection(self) -> float:
        return self.server_cpu / self.opened * 1000 if self.opened else 0.0

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_held - self.rss_before) / self.connections

    def handshake(self, q: float) -> float:
        values = sorted(self.handshake_ms)
        return values[min(len(values) - 1, int(len(values) * q))] if values else 0.0


# --- the baseline server --------------------------------------------------------------------


async def serve_baseline(port: int, first_frame: int) -> None:
    """Send one frame of ``first_frame`` bytes on connect, then hold the socket."""
    hello = {"event": "connection:success", "data": {"pad": ""}}
    hello["data"]["pad"] = "x" * max(0, first_frame - len(orjson.dumps(hello)))
    text = orjson.dumps(hello).decode()

    async def hold(ws) -> None:
        await ws.send(text)
        await ws.wait_closed()

    async with serve(
        hold, "127.0.0.1", port, compression=None, max_size=262144, backlog=4096
    ) as server:
        await server.serve_forever()


# --- the client side --------------------------------------------------------------------------


async def open_connections(
    urls: list[str], pid: int, concurrency: int, result: Result, expect_event: str
) -> list:
    """Open a connection to each url, at most ``concurrency`` handshakes in flight; the
    open ones. A connection is open once its first frame came."""
    gate = asyncio.Semaphore(concurrency)
    sockets: list = []
    done = 0

    async def one(url: str) -> None:
        nonlocal done
        async with gate:
            start = perf()
            try:
                ws = await connect(
                    url, compression=None, ping_interval=None, open_timeout=60,
                    close_timeout=1, max_size=2**20,
                )  # fmt: skip
                first = await asyncio.wait_for(ws.recv(decode=False), 60)
            except Exception as exc:
                result.failed += 1
                result.failure = result.failure or f"{type(exc).__name__}: {exc}"
                return
            result.handshake_ms.append((perf() - start) * 1000)
            if orjson.loads(first).get("event") != expect_event:
                result.failed += 1
                result.failure = result.failure or f"first frame {first[:200]!r}"
                await ws.close()
                return
            result.first_frame = len(first)
            sockets.append(ws)
            done += 1

    async def sample() -> None:
        while True:
            result.ramp.append((perf() - start, done, rss_kib(pid)))
            await asyncio.sleep(0.25)

    cpu0, server0, start = time.process_time(), cpu_seconds(pid), perf()
    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(one(url) for url in urls))
    result.connect_seconds = perf() - start
    result.client_cpu = (time.process_time() - cpu0) / result.connect_seconds
    result.server_cpu = cpu_seconds(pid) - server0
    sampler.cancel()
    result.opened = len(sockets)
    return sockets


async def measure(urls: list[str], warmup: list[str], pid: int, args, result: Result) -> None:
    expect = "connection:success"
    # Warm-up: one-off imports, pools and caches of the server are not per connection.
    for ws in await open_connections(warmup, pid, 10, Result("warmup", len(warmup)), expect):
        await ws.close()
    before = await census(pid, result.census_dir, 1) if result.census_dir else None
    await asyncio.sleep(2)
    result.rss_before = rss_kib(pid)
    result.concurrency = args.concurrency
    window_start = time.time()
    sockets = await open_connections(urls, pid, args.concurrency, result, expect)
    cpu0, start = cpu_seconds(pid), perf()
    await asyncio.sleep(args.hold)
    result.idle_cpu = (cpu_seconds(pid) - cpu0) / (perf() - start)
    result.rss_held = rss_kib(pid)
    result.held = sum(1 for ws in sockets if ws.close_code is None)
    result.window = (window_start, time.time())
    if result.log_path is not None:
        result.log_mark = result.log_path.stat().st_size
    result.ramp.append((result.connect_seconds + args.hold, result.held, result.rss_held))
    if before is not None:  # after the measurements: a census stops the server for a while
        after = await census(pid, result.census_dir, 2)
        if after is not None:
            result.census = census_delta(before, after, result.held)
            result.collections = [
                (start, seconds)
                for start, seconds in after.get("collections", [])
                if result.window[0] <= start <= result.window[1]
            ]
    for ws in sockets:  # no closing handshakes: the server is stopped right after
        ws.transport.abort()


def run_client(urls: list[str], warmup: list[str], pid: int, args, result: Result) -> None:
    async def main() -> None:
        await measure(urls, warmup, pid, args, result)

    try:
        import uvloop  # the load generator should cost as little CPU as it can
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


# --- where the memory goes: a census of the server's Python objects --------------------------

# Installed in a server process through a ``sitecustomize`` module on its PYTHONPATH (the
# server runs its usual command): on SIGUSR1 it counts the objects the garbage collector
# tracks, by type, with their shallow sizes, and writes them to BENCH_CENSUS_DIR/<n>.json.
# With BENCH_TRACE_FRAMES set, the first census also starts tracemalloc (so only what is
# allocated from then on is traced) and each later one first writes a snapshot, <n>.trace.
CENSUS_HOOK = """
import gc, json, os, signal, sys, time, tracemalloc

_taken = [0]
_collections = []  # full (generation 2) garbage collections: [start, seconds]
_busy = [False]


def _on_gc(phase, info):
    if info.get("generation") != 2 or _busy[0]:
        return
    if phase == "start":
        _collections.append([time.time(), 0.0])
    elif _collections:
        _collections[-1][1] = time.time() - _collections[-1][0]


gc.callbacks.append(_on_gc)


def _name(kind):
    module, name = getattr(kind, "__module__", None), getattr(kind, "__qualname__", None)
    if not isinstance(module, str):
        module = "?"
    return module + "." + (name if isinstance(name, str) else kind.__name__)


def _census(signum, frame):
    _busy[0] = True
    try:  # never raise into whatever the server was running
        _take()
    except Exception:
        pass
    finally:
        _busy[0] = False


def _take():
    gc.collect()
    _taken[0] += 1
    folder = os.environ["BENCH_CENSUS_DIR"]
    path = os.path.join(folder, str(_taken[0]))
    frames = int(os.environ.get("BENCH_TRACE_FRAMES") or 0)
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(path + ".trace")
    counts, sizes, names = {}, {}, {}
    for obj in gc.get_objects():
        kind = type(obj)
        name = names.get(kind)
        if name is None:
            name = names[kind] = _name(kind)
        counts[name] = counts.get(name, 0) + 1
        try:
            sizes[name] = sizes.get(name, 0) + sys.getsizeof(obj)
        except Exception:
            pass
    with open(path + ".tmp", "w") as out:
        json.dump({"counts": counts, "sizes": sizes, "collections": _collections}, out)
    os.replace(path + ".tmp", path + ".json")
    if frames and not tracemalloc.is_tracing():
        tracemalloc.start(frames)


signal.signal(signal.SIGUSR1, _census)
"""


def with_census_hook(env: dict[str, str], folder: Path) -> dict[str, str]:
    (folder / "sitecustomize.py").write_text(CENSUS_HOOK)
    path = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH", "")]))
    return dict(env, PYTHONPATH=path, BENCH_CENSUS_DIR=str(folder))


async def census(pid: int, folder: Path, n: int) -> dict | None:
    """Ask the server for census ``n``; None if it did not come within a minute."""
    os.kill(pid, signal.SIGUSR1)
    path = folder / f"{n}.json"
    for _ in range(600):
        if path.exists():
            return orjson.loads(path.read_bytes())
        await asyncio.sleep(0.1)
    return None


def owner_of(filename: str) -> str | None:
    """The installed package or the project module a source file belongs to; None for the
    standard library (and frozen or generated code)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(f"{ROOT}{os.sep}"):
        return os.path.relpath(filename, ROOT)
    return None


def memory_by_owner(path: Path, connections: int) -> tuple[list, list]:
    """What a tracemalloc snapshot holds per connection, by owner and by line: each
    allocation is counted for the innermost frame of its traceback outside the standard
    library (a deque made by ``asyncio.Queue()`` in daphne is daphne's), named by its
    package or, for this project, its module."""
    import tracemalloc

    owners, sites = Counter(), Counter()
    for stat in tracemalloc.Snapshot.load(str(path)).statistics("traceback"):
        frame = next((f for f in reversed(stat.traceback) if owner_of(f.filename)), None)
        if frame is None:
            owners["Python (standard library only)"] += stat.size
            continue
        owner = owner_of(frame.filename)
        owners[owner] += stat.size
        module = owner if "/" in owner else f"{owner}/{Path(frame.filename).name}"
        sites[f"{module}:{frame.lineno}"] += stat.size
    n = max(1, connections)
    return (
        [(name, size / n) for name, size in owners.most_common()],
        [(name, size / n) for name, size in sites.most_common()],
    )


def census_delta(before: dict, after: dict, connections: int) -> dict:
    out = {}
    for name in after["counts"]:
        objects = after["counts"][name] - before["counts"].get(name, 0)
        size = after["sizes"].get(name, 0) - before["sizes"].get(name, 0)
        if objects > 0 or size > 0:
            out[name] = (objects / max(1, connections), size / max(1, connections))
    return out


# --- the two systems ------------------------------------------------------------------------


def split_log_issues(log: Path, mark: int) -> tuple[Counter, Counter]:
    """The worker log's problems up to byte ``mark`` (the end of the hold), and after it
    (the teardown: every client drops at once, then the worker is stopped)."""
    text = log.read_bytes()
    mark = mark or len(text)
    with tempfile.TemporaryDirectory() as folder:
        head, tail = Path(folder, "head.log"), Path(folder, "tail.log")
        head.write_bytes(text[:mark])
        tail.write_bytes(text[mark:])
        return log_issues([head]), log_issues([tail])


def run_platform(args, log_dir: Path, *, trace_frames: int = 0) -> Result:
    """The platform's run; with ``trace_frames``, tracemalloc runs in the worker from the
    first census on, and the result says whose code holds the memory (``owners``)."""
    result = Result(f"platform ({args.server}, {args.layer})", args.connections)
    uses_redis = args.layer != "memory"
    database_url, drop = fresh_database(
        args.postgres_url if uses_redis else None, prefix="idle_bench_"
    )
    media = tempfile.mkdtemp(prefix="chat-bench-media-")
    worker = None
    try:
        env = worker_env(
            database_url=database_url,
            redis_url=args.redis_url if uses_redis else None,
            AUTH_RATE="off",
            DEBUG="false",
            LOG_LEVEL="WARNING",
            JWT_ACCESS_SECONDS="3600",
            MEDIA_ROOT=media,
            REALTIME_PREFIX=f"chat-bench-{uuid.uuid4().hex[:8]}",
        )
        if uses_redis:
            env["CHANNEL_LAYER"] = args.layer
        # Each user opens hundreds of connections at once, far past the contract's limit on
        # a user's new connections (30 a minute), which this benchmark is not about.
        env["BENCH_UNTHROTTLED"] = "1"
        migrate(env)
        if args.census or trace_frames:
            result.census_dir = Path(tempfile.mkdtemp(prefix="chat-bench-census-"))
            env = with_census_hook(env, result.census_dir)
            if trace_frames:
                env["BENCH_TRACE_FRAMES"] = str(trace_frames)
        worker = start_worker(env, log_dir, SERVERS[args.server])
        users = asyncio.run(register(worker.url, args.users, f"idle{uuid.uuid4().hex[:6]}_"))
        urls = [
            f"{worker.ws_url}?token={users[i % len(users)]['access']}"
            for i in range(args.connections)
        ]
        print(f"  platform: {len(users)} users registered; opening {len(urls)} connections")
        result.log_path = worker.log
        run_client(urls, urls[:WARMUP_CONNECTIONS], worker.process.pid, args, result)
        snapshot = result.census_dir / "2.trace" if result.census_dir else None
        if trace_frames and snapshot.exists():
            result.owners, result.sites = memory_by_owner(snapshot, result.held)
    finally:
        if worker is not None:
            stop_process(worker.process)
            result.log_issues, result.teardown_issues = split_log_issues(
                worker.log, result.log_mark
            )
        drop()
        with contextlib.suppress(OSError):
            for path in Path(media).iterdir():
                path.unlink()
            os.rmdir(media)
    return result


def run_baseline(args, first_frame: int) -> Result:
    result = Result("raw websockets", args.connections)
    port = free_port()
    env = dict(os.environ)
    if args.census:
        result.census_dir = Path(tempfile.mkdtemp(prefix="chat-bench-census-"))
        env = with_census_hook(env, result.census_dir)
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port),
         "--first-frame", str(first_frame)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        urls = [f"ws://127.0.0.1:{port}/"] * args.connections
        print(f"  baseline: opening {len(urls)} connections")
        run_client(urls, urls[:WARMUP_CONNECTIONS], process.pid, args, result)
    finally:
        stop_process(process)
    return result


# --- report ---------------------------------------------------------------------------------


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "-"


def table(results: list[Result]) -> str:
    base = results[-1]
    head = (
        "| system | connections | held | connect rate (conn/s) | vs baseline "
        "| handshake p50 / p99 ms | server CPU ms / connect | vs baseline | RSS before MiB "
        "| RSS held MiB | KiB / connection | vs baseline | idle server CPU | load-gen CPU |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in results:
        is_base = r is base
        lines.append(
            f"| {r.system} | {r.connections} | {r.held} | {r.rate:.0f} "
            f"| {'-' if is_base else ratio(r.rate, base.rate)} "
            f"| {r.handshake(0.5):.0f} / {r.handshake(0.99):.0f} "
            f"| {r.cpu_ms_per_connection:.2f} "
            f"| {'-' if is_base else ratio(r.cpu_ms_per_connection, base.cpu_ms_per_connection)} "
            f"| {mib(r.rss_before)} | {mib(r.rss_held)} | {r.kib_per_connection:.1f} "
            f"| {'-' if is_base else ratio(r.kib_per_connection, base.kib_per_connection)} "
            f"| {r.idle_cpu:.0%} | {r.client_cpu:.0%} |"
        )
    return "\n".join(lines)


def census_table(results: list[Result], top: int = 12) -> str:
    """The Python objects each connection added to each server, largest first (shallow
    sizes: what an object holds by reference is counted with its own type)."""
    if not all(r.census for r in results):
        return ""
    platform, base = results[0], results[-1]
    head = (
        f"| type | {platform.system}: objects / conn | bytes / conn "
        f"| {base.system}: objects / conn | bytes / conn |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    ranked = sorted(platform.census.items(), key=lambda item: -item[1][1])[:top]
    for name, (objects, size) in ranked:
        other = base.census.get(name, (0.0, 0.0))
        lines.append(
            f"| `{name.removeprefix('builtins.')}` | {objects:.1f} | {size:,.0f} "
            f"| {other[0]:.1f} | {other[1]:,.0f} |"
        )
    totals = [
        (sum(o for o, _ in r.census.values()), sum(b for _, b in r.census.values()))
        for r in (platform, base)
    ]
    lines.append(
        f"| all tracked objects | {totals[0][0]:.0f} | {totals[0][1]:,.0f} "
        f"| {totals[1][0]:.0f} | {totals[1][1]:,.0f} |"
    )
    return "\n".join(lines)


OWNER_GROUPS = {
    "Channels": ("channels", "asgiref"),
    "the channel layer": ("channels_redis", "redis"),
    "Django, DRF, psycopg, PyJWT": ("django", "rest_framework", "psycopg", "jwt", "cffi"),
}


def owner_groups(r: Result) -> dict[str, float]:
    """The traced bytes per connection of the server, Channels, the channel layer, the
    libraries, this project's modules and the rest."""
    groups: Counter = Counter()
    for owner, size in r.owners:
        if owner in SERVER_PACKAGES:
            groups["server"] += size
        elif "/" in owner:
            groups["project"] += size
        else:
            group = next((g for g, names in OWNER_GROUPS.items() if owner in names), "other")
            groups[group] += size
    return groups


def project_modules(r: Result, top: int = 5) -> str:
    """This project's modules that hold the most per connection, with their KiB."""
    modules = [(owner, size) for owner, size in r.owners if "/" in owner][:top]
    return ", ".join(f"`{owner}` {size / 1024:.2f}" for owner, size in modules) or "none"


def owners_table(r: Result, top: int = 14) -> str:
    total = sum(size for _, size in r.owners)
    lines = [
        "| code that allocated it | KiB / connection | share |",
        "| --- | --- | --- |",
        *(
            f"| `{owner}` | {size / 1024:.2f} | {size / total:.0%} |"
            for owner, size in r.owners[:top]
        ),
        f"| all traced | {total / 1024:.1f} | 100% |",
    ]
    sites = [(site, size) for site, size in r.sites if site.split("/")[0] not in SERVER_PACKAGES]
    lines += [
        "",
        "| largest allocation sites outside the server | KiB / connection |",
        "| --- | --- |",
        *(f"| `{site}` | {size / 1024:.2f} |" for site, size in sites[:top]),
    ]
    return "\n".join(lines)


def owners_notes(results: list[Result], args) -> list[str]:
    platform, base = results[0], results[-1]
    groups = owner_groups(platform)
    total = sum(groups.values())
    kib = {name: size / 1024 for name, size in groups.items()}
    notes = [
        f"- Traced over {args.trace:,} connections: {total / 1024:.1f} KiB per connection "
        f"still allocated after the hold, against {platform.kib_per_connection:.1f} KiB of "
        "RSS in the main run (RSS adds the allocator's overhead and fragmentation).",
        f"- The server's own connection (daphne, Twisted, autobahn, txaio: the protocol "
        f"object with its many attributes, the transport, the upgraded HTTP request, the "
        f"`asyncio.Queue` daphne feeds the application from): {kib.get('server', 0):.1f} "
        f"KiB ({groups.get('server', 0) / total:.0%}). Not this project's to change; another "
        "server is (`--server uvicorn`).",
        f"- Channels and asgiref: {kib.get('Channels', 0):.1f} KiB. The middlewares and "
        "the consumer do not return while the socket is open: `ProtocolTypeRouter`, the "
        "origin check (`chatproject/origins.py`), the auth middleware "
        "(`accounts/middleware.py`), `URLRouter` (which passes on a copy of the scope with "
        "`url_route`) and the consumer are suspended one inside the other in the "
        "application task daphne runs for the connection, and the consumer's "
        "`AsyncConsumer.__call__` waits in Channels' `await_many_dispatch`, which keeps two "
        "tasks per connection (one on daphne's input queue, one on the channel layer's "
        "`receive`), replaced by new ones after each message they deliver.",
        f"- The channel layer: {kib.get('the channel layer', 0):.1f} KiB: the connection's "
        f"channel in {LAYER_NAMES[args.layer]}, with an `asyncio.Queue` of its own that the "
        "`receive` task waits on"
        + (
            " (`channels_redis/pubsub.py`), and its Redis subscription."
            if args.layer == "pubsub"
            else "."
        ),
        f"- Django, DRF, psycopg, PyJWT: {kib.get('Django, DRF, psycopg, PyJWT', 0):.1f} "
        "KiB, mostly the user loaded for the token (a model instance per connection).",
        f"- This project's modules: {kib.get('project', 0):.1f} KiB ({project_modules(platform)}: "
        "the middlewares' suspended frames and the scope the auth middleware passes on with "
        "the user, the token's expiry and its `send` wrapper, the consumer's attributes, "
        "the timers' entries, the event loop's binding in the connection's context); other: "
        f"{kib.get('other', 0) + kib.get('Python (standard library only)', 0):.1f} KiB.",
    ]
    if base.kib_per_connection and total:
        overhead = platform.kib_per_connection / (total / 1024)
        budget = TARGET_MEMORY_RATIO * base.kib_per_connection / overhead - kib.get("server", 0)
        notes.append(
            f"- At {TARGET_MEMORY_RATIO:g}x the baseline's {base.kib_per_connection:.1f} "
            f"KiB and this run's RSS / traced ratio ({overhead:.2f}), everything but the "
            f"server would have to fit in {budget:.1f} KiB per connection; it takes "
            f"{(total - groups.get('server', 0)) / 1024:.1f} KiB."
        )
    return notes


def verdicts(results: list[Result]) -> list[str]:
    base = results[-1]
    lines = []
    for r in results[:-1]:
        held = "met" if r.held >= TARGET_HELD else "NOT met"
        memory_ratio = r.kib_per_connection / base.kib_per_connection
        memory = "met" if memory_ratio <= TARGET_MEMORY_RATIO else "NOT met"
        lines.append(
            f"- {r.system}: {r.held:,} of {r.connections:,} connections held: target "
            f"{TARGET_HELD:,} held {held}"
            + (f" ({r.failed} handshakes failed)" if r.failed else "")
            + f"; {r.kib_per_connection:.1f} KiB per connection, {memory_ratio:.2f}x the "
            f"baseline's {base.kib_per_connection:.1f} KiB: target <= "
            f"{TARGET_MEMORY_RATIO:g}x {memory}; connect rate {r.rate:.0f}/s, "
            f"{ratio(r.rate, base.rate)} the baseline's {base.rate:.0f}/s (no target)"
        )
    return lines


def interpretation(results: list[Result], args) -> list[str]:
    notes = []
    base = results[-1]
    walks = (
        " daphne's walks over every open connection (every 1 and 2 s),"
        if args.server == "daphne"
        else ""
    )
    for r in results:
        if r.failed:
            notes.append(
                f"- {r.system}: {r.failed} of {r.connections} handshakes failed, the first: "
                f"`{r.failure}`"
                + (
                    " (daphne refuses with 403 a handshake the application has not accepted "
                    "within its `--websocket_connect_timeout`, 5 s by default)"
                    if "403" in r.failure
                    else ""
                )
            )
    for r in results[:-1]:
        notes.append(
            f"- Connecting: a platform handshake checks the origin, decodes the JWT and loads "
            f"the user (one database query, in Channels' shared database thread), subscribes "
            f"the connection's channel and "
            f"joins the user's channel group, adds the connection to the user's presence set "
            f"and takes its offline queue in one round trip "
            f"({'in memory' if args.layer == 'memory' else 'a Redis transaction'}), then "
            f"sends `connection:success`: {r.cpu_ms_per_connection:.2f} ms "
            f"of worker CPU per connection against the raw server's "
            f"{base.cpu_ms_per_connection:.2f} ms "
            f"({ratio(r.cpu_ms_per_connection, base.cpu_ms_per_connection)}). Measured in CPU, "
            f"the comparison depends much less on what else the machine is doing than the "
            f"rates do."
        )
        notes.append(
            f"- Idle is not free: with {r.held:,} connections open the worker used "
            f"{r.idle_cpu:.0%} of a core doing nothing but the presence heartbeat (one task "
            f"for all its connections, refreshing their entries every 15 s in pipelined "
            f"Redis calls, 500 users a pipeline), pings,{walks} and the garbage collections "
            f"of a heap this size, against {base.idle_cpu:.0%} for the raw server (pings "
            f"only)."
        )
        if r.log_issues:
            notes.append(
                f"- Worker log lines at WARNING or above while connecting and holding, "
                f"{r.system}: "
                + "; ".join(f"`{text}` x {n}" for text, n in r.log_issues.most_common(4))
                + ". Redis calls wait for a free connection of the worker's bounded pool "
                "(`REDIS_MAX_CONNECTIONS`, up to `REDIS_POOL_TIMEOUT` s) rather than fail at "
                "once; a failed presence refresh is only logged, but a connection whose "
                "refreshes keep failing for `PRESENCE_TTL` (45 s) shows its user offline."
            )
        if r.collections:
            longest = max(seconds for _, seconds in r.collections)
            total = sum(seconds for _, seconds in r.collections)
            span = r.window[1] - r.window[0]
            notes.append(
                f"- The worker made {len(r.collections)} full garbage collections while "
                f"connecting and holding, {total:.1f} s in all ({total / span:.0%} of those "
                f"{span:.0f} s), the longest {longest:.1f} s, each stopping its event loop "
                f"(the census hook recorded them): every object of every held connection is "
                f"traversed again at each one. Fewer objects per connection (the census "
                f"below) shortens them; `chatproject/asgi.py` calls `gc.freeze()` once the "
                f"app is loaded, which takes the framework's own objects out of them."
            )
        if r.teardown_issues:
            notes.append(
                f"- After the hold (the census pauses the worker for a few seconds, then all "
                f"{r.held:,} clients drop at once, each disconnect updating presence in Redis): "
                + "; ".join(f"`{text}` x {n}" for text, n in r.teardown_issues.most_common(3))
                + "."
            )
        slow = ramp_rates(r)
        if slow and slow[1] >= 0.9 * slow[0]:
            notes.append(
                f"- The connect rate holds as connections accumulate: {slow[0]:.0f}/s over "
                f"the first fifth of the connections, {slow[1]:.0f}/s over the last fifth."
            )
        elif slow:
            notes.append(
                f"- The connect rate falls as connections accumulate: {slow[0]:.0f}/s over the "
                f"first fifth of the connections, {slow[1]:.0f}/s over the last fifth (each "
                f"full garbage collection takes longer as the heap grows"
                + (
                    ", and daphne walks over every open connection every second)."
                    if args.server == "daphne"
                    else ")."
                )
            )
    platform = results[0]
    if platform.census and base.census:

        def per(r: Result, name: str) -> float:
            return r.census.get(name, (0.0, 0.0))[0]

        notes.append(
            f"- Per held connection the platform keeps {per(platform, '_asyncio.Task'):.0f} "
            f"asyncio tasks, {per(platform, 'builtins.coroutine'):.0f} suspended coroutines and "
            f"{per(platform, 'collections.deque'):.0f} deques (queues and buffers) against "
            f"the raw server's {per(base, '_asyncio.Task'):.0f}, "
            f"{per(base, 'builtins.coroutine'):.0f} and {per(base, 'collections.deque'):.0f} "
            "(census below): the application task daphne runs for the connection, in which "
            "`ProtocolTypeRouter`, the auth middleware, `URLRouter` and "
            "the consumer are suspended one inside the other, and the two tasks of Channels' "
            "`await_many_dispatch` (`AsyncConsumer.__call__`): one waits on daphne's input "
            "queue, one on the connection's own queue in the channel layer (each an "
            "`asyncio.Queue`, with its deques). The presence heartbeat and token expiry are "
            "the worker's (`chat.timers`): one task and one timer for all its connections."
        )
    if max(r.client_cpu for r in results) > 0.8:
        notes.append(
            "- The load generator (one Python process holding every client) used up to "
            f"{max(r.client_cpu for r in results):.0%} of a core while connecting, on the "
            "same two cores as the server: the connect rates are lower bounds, the raw "
            "server's most of all."
        )
    return notes


def ramp_rates(r: Result) -> tuple[float, float] | None:
    """Connections per second over the first and the last fifth of the N connections."""
    points = sorted(p for p in r.ramp if p[0] <= r.connect_seconds)
    fifth = r.connections / 5

    def when(count: float) -> float | None:
        return next((t for t, n, _ in points if n >= count), None)

    if not points:
        return None
    end, last = points[-1][0], points[-1][1]
    marks = [when(0), when(fifth), when(4 * fifth)]
    if None in marks or marks[1] <= marks[0] or end <= marks[2] or last <= 4 * fifth:
        return None
    return fifth / (marks[1] - marks[0]), (last - 4 * fifth) / (end - marks[2])


def plot(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot")
        return False
    fig, (ramp, memory, bars) = plt.subplots(1, 3, figsize=(15, 4.4), width_ratios=[1.2, 1.2, 0.8])
    for i, r in enumerate(results):
        points = sorted(r.ramp)
        ramp.plot([t for t, _, _ in points], [n for _, n, _ in points], color=f"C{i}",
                  label=f"{r.system}: {r.rate:.0f} conn/s")  # fmt: skip
        memory.plot(
            [n for _, n, _ in points], [(kib - r.rss_before) / 1024 for _, _, kib in points],
            marker=".", markersize=3, color=f"C{i}", label=r.system,
        )  # fmt: skip
    ramp.set_xlabel("seconds since the first handshake")
    ramp.set_ylabel("open connections")
    ramp.set_title(f"Connecting ({args_concurrency(results)} handshakes in flight)")
    memory.set_xlabel("open connections")
    memory.set_ylabel("server RSS growth (MiB)")
    memory.set_title("Server memory as connections open")
    for axis in (ramp, memory):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    values = [r.kib_per_connection for r in results]
    drawn = bars.bar(
        [r.system for r in results], values, color=[f"C{i}" for i in range(len(values))]
    )
    bars.bar_label(drawn, fmt="%.1f")
    bars.axhline(
        TARGET_MEMORY_RATIO * results[-1].kib_per_connection, color="red", linestyle="--",
        label=f"target: <= {TARGET_MEMORY_RATIO:g}x baseline",
    )  # fmt: skip
    bars.set_ylabel("KiB per connection")
    bars.set_title(f"KiB per idle connection, N = {results[0].connections:,}")
    bars.legend(fontsize=8)
    bars.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def args_concurrency(results: list[Result]) -> int:
    return results[0].concurrency


def section(results, args, command, started, seconds, load, plot_path) -> str:
    busy = ""
    if max(load) > 2.0:
        busy = (
            ". The machine was not idle: other processes competed for its two cores, which "
            "slows both systems' connect rates (they ran one after the other, so not "
            "necessarily alike); CPU per connection and memory depend much less on it"
        )
    parts = [
        HEADING,
        "",
        f"N authenticated WebSockets (`/ws/chat/?token=...`) opened to ONE {args.server} worker "
        f"and held idle, against a raw `websockets` server holding the same N connections, both "
        f"driven by the same client code in the same run. {args.users} users registered over "
        f"REST (`AUTH_RATE=off`) and their access tokens reused, so each user holds "
        f"{args.connections // args.users} connections. A connection counts once its first "
        f"frame (`connection:success`; the baseline sends a frame of the same size) has "
        f"arrived; at most {args.concurrency} handshakes in flight. Memory per connection: "
        f"(server RSS after a {args.hold:.0f} s idle hold - RSS before the first connection) "
        f"/ N, from `VmRSS` in /proc/<pid>/status, after a warm-up of {WARMUP_CONNECTIONS} "
        f"connections opened and closed. Server CPU per connect: the server process's CPU "
        f"time while the N connections opened / N. The worker: `bench.settings_bench`, "
        f"`CHANNEL_LAYER={args.layer}`"
        + (" on a fresh PostgreSQL database and Redis" if args.layer != "memory" else "")
        + ", `AUTH_RATE=off`, `DEBUG=false`; the baseline: `websockets` "
        f"{metadata.version('websockets')} on asyncio. No permessage-deflate on either side. "
        "Loopback; the clients run in one process (uvloop) on the same machine.",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s",
        f"- Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}{busy}",
        "",
        table(results),
        "",
        f"Targets (issue): {TARGET_HELD:,} connections held; memory per connection <= "
        f"{TARGET_MEMORY_RATIO:g}x the baseline's.",
        "",
        *verdicts(results),
        "",
        *interpretation(results, args),
        "",
    ]
    if plot_path is not None and args.write is not None:
        link = os.path.relpath(plot_path.resolve(), args.write.resolve().parent)
        parts += [f"![Idle connections: connect ramp and server memory]({link})", ""]
    census = census_table(results)
    if census:
        parts += [
            "Where the memory goes: the Python objects each held connection added to each "
            "server, from a census of what the garbage collector tracks (`gc.get_objects()`, "
            "by type, `sys.getsizeof`), taken before the first connection and after the hold "
            "(through a `sitecustomize` hook on SIGUSR1; `--no-census` skips it). Shallow "
            "sizes: strings, bytes and numbers are not tracked, and allocator overhead is "
            "not counted, so the totals are below the RSS figures.",
            "",
            census,
            "",
        ]
    platform = results[0]
    if platform.owners:
        parts += [
            f"Whose code holds it: one more platform run of {args.trace:,} connections with "
            f"`tracemalloc` on in the worker from just before the first connection "
            f"({TRACE_FRAMES} frames; {TRACE_CONCURRENCY} handshakes in flight, as tracing "
            "slows the worker; its rates are not reported). Each allocation still held after "
            "the hold is counted for the innermost frame of its traceback outside the "
            "standard library, by package, or by module for this project's code (a deque "
            "that `asyncio.Queue()` makes when daphne calls it is daphne's).",
            "",
            owners_table(platform),
            "",
            *owners_notes(results, args),
            "",
        ]
    return "\n".join(parts)


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "-n", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20, help="users sharing the connections")
    parser.add_argument("--concurrency", type=int, default=20, help="handshakes in flight")
    parser.add_argument("--hold", type=float, default=10.0, help="idle hold, s")
    parser.add_argument("--layer", choices=("pubsub", "core", "memory"), default="pubsub")
    parser.add_argument("--server", choices=tuple(SERVERS), default="daphne")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--no-census", dest="census", action="store_false",
        help="skip counting the servers' Python objects after the hold",
    )  # fmt: skip
    parser.add_argument(
        "--trace", type=int, default=1000, metavar="N",
        help="connections of one more platform run with tracemalloc on, to say whose code "
        "holds the memory (0 skips it)",
    )  # fmt: skip
    add_service_options(parser)
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "plots" / "idle_memory.png",
        help="where to draw the memory plot (with matplotlib)",
    )  # fmt: skip
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-frame", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_baseline:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_baseline(args.serve_baseline, args.first_frame))
        return

    started = datetime.now(UTC)
    clock = time.monotonic()
    load_start = os.getloadavg()[0]
    # The client holds N sockets; the worker and the baseline, started from here, inherit
    # the limit and hold N each.
    limit = raise_fd_limit(args.connections + 2048)
    log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-logs-"))
    print(f"idle-connections benchmark; open-file limit {limit}; worker logs in {log_dir}")

    results = [run_platform(args, log_dir)]
    if not args.no_baseline:
        results.append(run_baseline(args, results[0].first_frame or 200))
    if args.trace:
        print(f"  traced run (tracemalloc, {TRACE_FRAMES} frames): {args.trace} connections")
        traced = run_platform(
            argparse.Namespace(**{
                **vars(args), "connections": args.trace,
                "concurrency": min(args.concurrency, TRACE_CONCURRENCY),
            }),
            log_dir,
            trace_frames=TRACE_FRAMES,
        )  # fmt: skip
        results[0].owners, results[0].sites = traced.owners, traced.sites
    seconds = time.monotonic() - clock
    load = (load_start, os.getloadavg()[0])

    print()
    print(table(results))
    if len(results) > 1:
        print()
        print("\n".join(verdicts(results) + interpretation(results, args)))
    if results[0].owners:
        print()
        print("\n".join([owners_table(results[0]), "", *owners_notes(results, args)]))
    print(f"\nrun time {seconds:.0f} s; load average at start / end {load[0]:.2f} / {load[1]:.2f}")
    plot_path = args.plot if len(results) > 1 and plot(results, args.plot) else None
    if plot_path is not None:
        print(f"plot: {plot_path}")
    if args.write and len(results) > 1:
        command = shlex.join(["python", "bench/idle.py", *(argv or sys.argv[1:])])
        text = section(results, args, command, started, seconds, load, plot_path)
        write_section(args.write, HEADING, text)
        print(f"wrote the {HEADING[3:]} section of {args.write}")


if __name__ == "__main__":
    main()
