"""Capacity: how many concurrent users the platform carries under a chat workspace's load,
raised step by step until a step fails.

    python bench/capacity.py                              # 1 and 2 workers, steps up to 6000
    python bench/capacity.py --write docs/benchmarks.md   # ... and record the numbers
    python bench/capacity.py --quick --workers 1          # a smoke run: 50 and 100 users
    python bench/capacity.py --steps 500,1000 --ramp 60 --hold 120 --rooms-joined 5

The load model (defaults in ``bench/capacity_model.py``, each an option here): registered
users = the largest step, each a member of 5 rooms (70% of rooms with 2-10 members, 25% with
11-50, 5% with 100-500), built in bulk before the run (``bench/capacity_seed.py``). A step's
concurrent users are the first N; its new users log in through the token endpoint, connect
and join over ``--ramp`` seconds, and the users of earlier steps stay connected. Each
behaves as the web app does (``bench/capacity_user.py``): the room they have open joined
(``--rooms-joined 5``: all of theirs, as a Slack-like client), a message there every 60 s on
average (Poisson) with ``typing:start`` 1-3 s before and ``typing:stop`` on send, one
receipt per burst of other people's messages (600 ms debounce; ``message:seen`` when looking,
``message:delivered`` when not), a reaction every 5 minutes, a reconnect every 10 minutes
(rejoining with ``lastSeq``), and one ``stream:request`` per 200 messages, answered by the
Ollama emulator (first token after 0.6-3 s, 30-80 ms between chunks).

Measured over each step's ``--hold`` window, once all its users are in: send-to-receive p50
and p99 (every other member's copy of every ``message:send``; the clientId carries the
sender's clock: one process), p99 of every reply by event name (send to ack), errors over the
whole step (error replies, unexpected closes, failed logins or connects, replies missing
after 10 s), frames received per second, CPU and peak RSS of each worker, this run's
PostgreSQL backends, the Redis server, the emulator and the load generator. After the window,
every connected user rejoins each room with the ``lastSeq`` up to which it holds every event:
a message is lost if, after that replay, a member that had joined before it was sent still
lacks it. A step holds if p99 send-to-receive and the p99 of every reply are under 200 ms
and nothing errs or is lost; the run stops at the first step that does not and reports the
largest that held. ``--profile`` records worker 0 with py-spy during each window and says
where its time went.

Real daphne workers (``bench/servers.py``: a fresh PostgreSQL database, Redis with a key
prefix of its own, the pub/sub channel layer, ``bench.settings_bench``), connections spread
over them; throttles as the contract says (the model's rates are inside them) unless
``--unthrottled``. Writes JSON results and a plot to docs/plots/ and prints a markdown table.
All simulated users live in this one process (uvloop): the table shows its CPU, and a step
where it used more than 80% of a core is flagged, its latencies then including the load
generator's own queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import orjson

if __package__ in (None, ""):  # run as ``python bench/capacity.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import capacity_model as model
from bench.capacity_measure import (
    Sampler,
    failures,
    plot,
    progress,
    redis_server_pid,
    summarise,
    table,
)
from bench.capacity_user import REPLY_TIMEOUT_S, Recorder, Stats, User, perf
from bench.fanout import log_issues, machine, summarise_profile
from bench.servers import (
    ROOT,
    add_service_options,
    fresh_database,
    migrate,
    raise_fd_limit,
    start_worker,
    stop_process,
    worker_env,
    write_section,
)
from bench.stream import MODEL, Emulator

PASSWORD = "pw-Capacity-123456"
CHECK_CONCURRENCY = 50  # users rejoining at once in the loss check
CHECK_TIMEOUT_S = 300.0  # the whole loss check; users not checked by then count as errors
PLOTS = ROOT / "docs" / "plots"


# --- one run: N workers, the steps -----------------------------------------------------------


def run_config(workers: int, args) -> dict:
    """Every step on ``workers`` daphne workers over a fresh database; the run's results."""
    database_url, drop = fresh_database(args.postgres_url, prefix="chat_bench_cap_")
    database = urlparse(database_url).path.lstrip("/")
    media = tempfile.mkdtemp(prefix="chat-bench-media-")
    emulator = Emulator()
    started: list = []
    try:
        emulator.configure(
            num_tokens=model.ANSWER_TOKENS,
            first_delay_ms=model.FIRST_TOKEN_MS[0], first_delay_max_ms=model.FIRST_TOKEN_MS[1],
            delay_ms=model.CHUNK_GAP_MS[0], delay_max_ms=model.CHUNK_GAP_MS[1],
        )  # fmt: skip
        env = worker_env(
            database_url=database_url, redis_url=args.redis_url, AUTH_RATE="off", DEBUG="false",
            LOG_LEVEL="WARNING", JWT_ACCESS_SECONDS="86400", MEDIA_ROOT=media,
            REALTIME_PREFIX=f"chat-bench-{uuid.uuid4().hex[:8]}", CHANNEL_LAYER="pubsub",
            OLLAMA_URL=emulator.url, OLLAMA_MODEL=MODEL,
        )  # fmt: skip
        if args.unthrottled:
            env["BENCH_UNTHROTTLED"] = "1"
        migrate(env)
        population = model.build_population(
            max(args.steps), seed=args.seed, joined=args.rooms_joined
        )
        prefix = f"cap{uuid.uuid4().hex[:6]}_"
        clock = time.monotonic()
        sessions = seed(env, population, prefix, args.log_dir)
        print(f"  {workers} worker(s): {population.users} users in {len(sessions)} rooms "
              f"seeded in {time.monotonic() - clock:.0f} s", flush=True)  # fmt: skip
        for _ in range(workers):
            started.append(start_worker(env, args.log_dir))
        processes = {f"worker {k}": w.process.pid for k, w in enumerate(started)}
        processes["emulator"] = emulator.process.pid
        if (redis := redis_server_pid()) is not None:
            processes["redis"] = redis
        sampler = Sampler(processes, database)
        steps = run_async(drive(started, population, sessions, prefix, sampler, args))
    finally:
        for worker in started:
            stop_process(worker.process)
        emulator.stop()
        drop()
        shutil.rmtree(media, ignore_errors=True)
    issues = log_issues([w.log for w in started])
    held = [s["users"] for s in steps if not failures(s)]
    return {
        "workers": workers,
        "steps": steps,
        "largest_step_held": max(held, default=0),
        "worker_log_issues": dict(issues.most_common(20)),
    }


def seed(env: dict, population: model.Population, prefix: str, folder: Path) -> list[str]:
    spec, out = folder / f"{prefix}population.json", folder / f"{prefix}sessions.json"
    spec.write_bytes(orjson.dumps({
        "prefix": prefix, "password": PASSWORD, "users": population.users,
        "rooms": [list(room.members) for room in population.rooms],
    }))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "bench.capacity_seed", str(spec), str(out)],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    return orjson.loads(out.read_bytes())["sessions"]


def run_async(coroutine):
    try:
        import uvloop  # the load generator should cost as little CPU as it can
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def drive(workers, population, sessions, prefix, sampler: Sampler, args) -> list[dict]:
    rec = Recorder(tag=f"c{uuid.uuid4().hex[:6]}")
    rec.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20))
    users = []
    for i in range(population.users):
        worker = workers[i % len(workers)]
        rooms = [sessions[r] for r in population.joined[i]]
        rng = random.Random(args.seed * 1_000_003 + i)
        users.append(User(i, f"{prefix}{i}", PASSWORD, rooms, worker.url, worker.ws_url, rec, rng))
    loop = asyncio.get_running_loop()
    sweeper = loop.create_task(sweep(users))
    steps, active = [], 0
    try:
        for n in args.steps:
            rec.stats = Stats(users=n)
            start = loop.time()
            new = users[active:n]
            await asyncio.gather(*(
                launch(user, start + args.ramp * j / len(new)) for j, user in enumerate(new)
            ))  # fmt: skip
            await asyncio.sleep(max(0.0, start + args.ramp - loop.time()))
            ramp = loop.time() - start
            active = n
            sampler.begin()
            recording = await start_profile(workers[0].process.pid, n, args)
            rec.stats.measuring = True
            await asyncio.sleep(args.hold)
            rec.stats.measuring = False
            usage = sampler.end()
            profile = await end_profile(recording)
            lost, unseen, checked = await check(users[:n], rec)
            step = summarise(rec.stats, args.hold, lost, unseen, usage, profile)
            step["copies_checked"] = checked
            step["ramp_s"] = ramp
            steps.append(step)
            progress(len(workers), step)
            if failures(step):
                break
    finally:
        sweeper.cancel()
        await asyncio.gather(*(user.stop() for user in users[:active]))
        await rec.http.aclose()
    return steps


async def launch(user: User, at: float) -> None:
    await asyncio.sleep(max(0.0, at - asyncio.get_running_loop().time()))
    await user.start()


async def sweep(users: list[User]) -> None:
    """Count replies that never came, once a second."""
    while True:
        await asyncio.sleep(1)
        now = perf()
        for user in users:
            if user.pending:
                user.overdue(now)


async def check(users: list[User], rec: Recorder) -> tuple[int, int, int]:
    """The loss check: each user rejoins its rooms from the seq up to which it holds every
    event; (copies missing from members that joined before the message was sent, acked
    messages that no member holds, copies checked)."""
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one(user: User) -> dict[str, int]:
        async with gate:
            tops = {}
            for attempt in range(3):  # the user's own reconnect may cut a rejoin short
                try:
                    await asyncio.wait_for(user.ready.wait(), REPLY_TIMEOUT_S)
                    for session in user.sessions:
                        tops[session] = await user.join(session)
                    return tops
                except (TimeoutError, RuntimeError) as exc:
                    if attempt == 2 or "RECONNECTING" not in str(exc):
                        rec.error("loss check", f"{user.username}: {type(exc).__name__} {exc}")
                        return tops
            return tops

    tasks = {asyncio.ensure_future(one(user)): user for user in users}
    done, late = await asyncio.wait(tasks, timeout=CHECK_TIMEOUT_S)
    for task in late:
        task.cancel()
        rec.error("loss check", f"not done in {CHECK_TIMEOUT_S:.0f} s")
    lost, checked, held_by_any, newest = 0, 0, {}, {}
    for task in done:
        user, tops = tasks[task], task.result()
        for session, top in tops.items():
            first, mine = user.first_seq[session], user.messages[session]
            expected = [seq for seq in rec.acked[session] if first < seq <= top]
            checked += len(expected)
            lost += sum(1 for seq in expected if seq not in mine)
            held_by_any.setdefault(session, set()).update(mine)
            newest[session] = max(newest.get(session, 0), top)
    unseen = sum(
        1
        for session, top in newest.items()
        for seq in rec.acked[session]
        if seq <= top and seq not in held_by_any[session]
    )
    return lost, unseen, checked


async def start_profile(pid: int, users: int, args):
    if not args.profile:
        return None
    out = args.log_dir / f"profile-{pid}-{users}.txt"
    process = await asyncio.create_subprocess_exec(
        args.profile, "record", "--pid", str(pid), "--threads", "--idle", "--rate", "100",
        "--duration", str(max(1, int(args.hold))), "--format", "raw", "--output", str(out),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, out


async def end_profile(recording) -> str:
    if recording is None:
        return ""
    process, out = recording
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 30)
    return summarise_profile(out)


# --- report ---------------------------------------------------------------------------------

SECTION = "## Capacity"


def section(runs: list[dict], command: str, started: datetime, seconds: float, link: str) -> str:
    doc = __doc__.split("\n\n", 2)[2].strip()
    held = "; ".join(
        f"{run['workers']} worker(s): {run['largest_step_held'] or 'none'}" for run in runs
    )
    profiles = [
        f"- {run['workers']} worker(s), {step['users']} users, worker 0: {step['profile']}"
        for run in runs for step in run["steps"][-2:] if step["profile"]
    ]  # fmt: skip
    parts = [
        SECTION, "", doc, "",
        f"- Machine: {machine()}", f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s", "",
        f"Largest step that held: {held}.", "", table(runs), "",
        *([f"![Capacity: p99 and CPU against concurrent users]({link})", ""] if link else []),
        *(["Where worker 0's time went (py-spy, the last two steps):", "", *profiles, ""]
          if profiles else []),
    ]  # fmt: skip
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", help="comma list of concurrent users per step "
                        f"(default {','.join(map(str, model.STEPS))})")  # fmt: skip
    parser.add_argument("--ramp", type=float, help=f"s per step's ramp (default {model.RAMP_S})")
    parser.add_argument("--hold", type=float, help=f"s measured per step (default {model.HOLD_S})")
    parser.add_argument("--quick", action="store_true", help="a smoke run: steps 50,100, "
                        "10 s ramp and hold, unless given")  # fmt: skip
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts (1,2)")
    parser.add_argument("--rooms-joined", type=int, default=model.ROOMS_JOINED,
                        help="rooms each socket joins: 1 the web app, 5 Slack-like")  # fmt: skip
    parser.add_argument("--seed", type=int, default=19, help="of the population and behaviour")
    parser.add_argument("--unthrottled", action="store_true",
                        help="raise every per-user limit (BENCH_UNTHROTTLED=1)")  # fmt: skip
    parser.add_argument("--profile", nargs="?", const="py-spy",
                        help="record worker 0 with py-spy during each step's window")  # fmt: skip
    parser.add_argument("--results", type=Path, default=PLOTS / "capacity.json")
    parser.add_argument("--plot", type=Path, default=PLOTS / "capacity.png")
    add_service_options(parser)
    args = parser.parse_args(argv)
    base = model.QUICK if args.quick else {"steps": model.STEPS, "ramp": model.RAMP_S,
                                            "hold": model.HOLD_S}  # fmt: skip
    args.steps = [int(s) for s in args.steps.split(",")] if args.steps else list(base["steps"])
    args.ramp = base["ramp"] if args.ramp is None else args.ramp
    args.hold = base["hold"] if args.hold is None else args.hold
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.steps != sorted(args.steps) or args.steps[0] < model.ROOMS_PER_USER:
        raise SystemExit(f"--steps must grow, from at least {model.ROOMS_PER_USER} users")
    if args.profile:
        venv = Path(sys.executable).parent / args.profile
        args.profile = shutil.which(args.profile) or (str(venv) if venv.exists() else None)
        if args.profile is None:
            raise SystemExit("--profile: py-spy not found (pip install py-spy)")
    # One socket per user here and in the workers, which inherit the limit.
    limit = raise_fd_limit(max(args.steps) * 2 + 1024)
    args.log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-logs-"))
    started, clock = datetime.now(UTC), time.monotonic()
    print(f"capacity benchmark: steps {args.steps}, ramp {args.ramp:.0f} s, hold "
          f"{args.hold:.0f} s, workers {counts}; open-file limit {limit}; worker logs in "
          f"{args.log_dir}", flush=True)  # fmt: skip
    runs = [run_config(workers, args) for workers in counts]
    seconds = time.monotonic() - clock
    command = shlex.join(["python", "bench/capacity.py", *(argv or sys.argv[1:])])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "command": command, "started": started.isoformat(), "seconds": seconds,
        "machine": machine(), "steps": args.steps, "ramp_s": args.ramp, "hold_s": args.hold,
        "rooms_joined": args.rooms_joined, "runs": runs,
    }, indent=1) + "\n")  # fmt: skip
    drew = plot(runs, args.plot)
    print()
    print(table(runs))
    for run in runs:
        print(f"\n{run['workers']} worker(s): largest step that held "
              f"{run['largest_step_held'] or 'none'}")  # fmt: skip
        if run["worker_log_issues"]:
            print("  worker log:", run["worker_log_issues"])
    print(f"\nresults in {args.results}{' and ' + str(args.plot) if drew else ''}; "
          f"run time {seconds:.0f} s")  # fmt: skip
    if args.write:
        link = os.path.relpath(args.plot, args.write.resolve().parent) if drew else ""
        write_section(args.write, SECTION, section(runs, command, started, seconds, link))
        print(f"wrote the Capacity section of {args.write}")


if __name__ == "__main__":
    main()
