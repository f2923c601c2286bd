"""Time to first token with retrieval, against the plain stream.

    python bench/retrieval.py                              # 100 files of 20 pages, top 8, 768 dims
    python bench/retrieval.py --write docs/benchmarks.md   # ... and record the numbers
    python bench/retrieval.py --files 5 --pages 2 --requests 6   # a quick check that it runs

One daphne worker (``bench.servers``: a fresh PostgreSQL database; Redis with a key prefix of
its own when ``--redis-url`` is given) has ``OLLAMA_URL`` pointed at the Ollama emulator, in a
process of its own (``bench/stream.py --serve-emulator``). Two rooms of one user: "files",
whose one message carries ``--files`` PDF attachments of ``--pages`` pages, each page
``--passages-per-page`` passages of about 1000 characters with ``--dimensions``-long vectors;
and "plain", with no files. The passages and their (random, unit) vectors are written
straight into the database, as indexing would have stored them (embedding them through the
emulator would measure nothing about an answer's start). Then ``--requests`` questions are
asked over ``/ws/chat/`` (``stream:request``), alternating between the rooms, and each is
timed from the request to its first ``stream:chunk``. A stream in "files" embeds the question
(one ``/api/embed`` round trip to the emulator), compares it with every passage of the room
(numpy, the session's matrix cached in the worker after the first question) and reads the
best ``RETRIEVAL_TOP_K`` passages' text; "plain" does one query to find it has none. The
added time is the files room's percentile minus the plain room's. The first question of each
room is not measured (it loads the matrix: reported apart). Loopback only; everything
started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import orjson
from websockets.asyncio.client import connect

if __package__ in (None, ""):  # run as ``python bench/retrieval.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout import machine, register
from bench.servers import (
    add_service_options,
    fresh_database,
    migrate,
    start_worker,
    stop_process,
    worker_env,
    write_section,
)
from bench.stream import Emulator

HEADING = "## Retrieval: added time to first token"
TARGET_ADDED_MS = 50.0
PASSAGE_CHARS = 1000
WORDS = [
    "launch", "window", "engine", "valve", "pressure", "nozzle", "checklist", "crew", "pad",
    "fuel", "oxidiser", "telemetry", "stage", "orbit", "burn", "abort", "sequence", "weather",
    "range", "safety", "ignition", "thrust", "gimbal", "coolant",
]  # fmt: skip
perf = time.perf_counter


def seed(database_url: str, session_id: str, message_id: str, args) -> int:
    """Attachments and passages of the "files" room written through the ORM, in this
    process, into the worker's database: the number of passages."""
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="bench.settings_bench")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from chat.models import Attachment
    from llm.embeddings import vector_pack
    from llm.models import Passage

    rng = np.random.default_rng(21)
    per_file = args.pages * args.passages_per_page
    count = 0
    for number in range(args.files):
        attachment = Attachment.objects.create(
            message_id=message_id,
            file_name=f"manual-{number:03d}.pdf",
            mime_type="application/pdf",
            file_size=per_file * PASSAGE_CHARS,
            index_status=Attachment.IndexStatus.READY,
        )
        vectors = rng.standard_normal((per_file, args.dimensions)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        words = rng.choice(WORDS, size=(per_file, PASSAGE_CHARS // 7))
        Passage.objects.bulk_create(
            [
                Passage(
                    session_id=session_id,
                    attachment=attachment,
                    index=index,
                    text=" ".join(words[index])[:PASSAGE_CHARS],
                    embedding=vector_pack(vectors[index]),
                    dimensions=args.dimensions,
                )
                for index in range(per_file)
            ],
            batch_size=500,
        )
        count += per_file
    return count


async def first_token(ws, room: str, prompt: str) -> tuple[float, dict]:
    """Seconds from ``stream:request`` to the stream's first chunk; then read to its end.
    The answer's final message too (its metadata has the citations)."""
    ref = uuid.uuid4().hex[:8]
    started = perf()
    request = {"event": "stream:request", "ref": ref, "data": {"sessionId": room, "prompt": prompt}}
    await ws.send(orjson.dumps(request).decode())
    stream_id = message_id = None
    first = None
    early: list[dict] = []
    while True:
        frame = orjson.loads(await ws.recv())
        event, data = frame["event"], frame.get("data") or {}
        if event == "error" and frame.get("ref") == ref:
            raise RuntimeError(f"stream:request refused: {data}")
        if event == "ack" and frame.get("ref") == ref:
            stream_id, message_id = data["streamId"], data["messageId"]
            early = [f for f in early if f["data"].get("streamId") == stream_id]
            if any(f["event"] == "stream:chunk" for f in early) and first is None:
                first = perf() - started
            continue
        if event.startswith("stream:"):
            if stream_id is None:
                early.append(frame)
                continue
            if data.get("streamId") != stream_id:
                continue
            if event == "stream:chunk" and first is None:
                first = perf() - started
            if event in ("stream:error", "stream:stopped"):
                raise RuntimeError(f"the answer ended with {event}: {data}")
        saved = event == "message:edited" and data["message"]["id"] == message_id
        if saved and data["message"]["metadata"].get("status") != "streaming":
            return first, data["message"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(worker_url: str, user: dict, rooms: dict, requests: int) -> dict:
    times: dict[str, list[float]] = {"plain": [], "files": []}
    cold: dict[str, float] = {}
    cited = 0
    url = worker_url.replace("http://", "ws://") + f"/ws/chat/?token={user['access']}"
    async with connect(url, max_size=2**22) as ws:
        orjson.loads(await ws.recv())  # connection:success
        for name, room in rooms.items():
            await ws.send(orjson.dumps({"event": "session:join", "ref": name,
                                        "data": {"sessionId": room}}).decode())  # fmt: skip
            while orjson.loads(await ws.recv()).get("ref") != name:
                pass
        for name, room in rooms.items():
            cold[name], _ = await first_token(ws, room, "engine pressure before ignition?")
        for i in range(requests):
            name = ("plain", "files")[i % 2]
            prompt = f"what does the checklist say about the {WORDS[i % len(WORDS)]}?"
            seconds, message = await first_token(ws, rooms[name], prompt)
            times[name].append(seconds * 1000)
            cited += bool(message["metadata"].get("citations"))
            await asyncio.sleep(0.05)
    return {"times": times, "cold": cold, "cited": cited}


def report(args, result: dict, passages: int) -> str:
    plain, files = result["times"]["plain"], result["times"]["files"]
    added50 = statistics.median(files) - statistics.median(plain)
    added95 = pct(files, 0.95) - pct(plain, 0.95)
    verdict = "meets" if added50 < TARGET_ADDED_MS else "misses"
    lines = [
        HEADING,
        "",
        f"`python bench/retrieval.py --files {args.files} --pages {args.pages} "
        f"--passages-per-page {args.passages_per_page} --dimensions {args.dimensions} "
        f"--requests {args.requests}` on PostgreSQL, one daphne worker, the Ollama emulator.",
        f"{passages} passages in the room, top {os.environ.get('RETRIEVAL_TOP_K', 8)}.",
        f"Machine: {machine()}.",
        "",
        "| room | answers | p50 ms | p95 ms | first (cold) ms |",
        "| --- | --- | --- | --- | --- |",
        f"| plain | {len(plain)} | {statistics.median(plain):.1f} | {pct(plain, 0.95):.1f} | "
        f"{result['cold']['plain'] * 1000:.1f} |",
        f"| files | {len(files)} | {statistics.median(files):.1f} | {pct(files, 0.95):.1f} | "
        f"{result['cold']['files'] * 1000:.1f} |",
        "",
        f"Added by retrieval: p50 {added50:.1f} ms, p95 {added95:.1f} ms; the target is under "
        f"{TARGET_ADDED_MS:.0f} ms at p50: it {verdict} it. Answers in the files room that "
        f"carried citations: {result['cited']} of {len(files)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--passages-per-page", type=int, default=3)
    parser.add_argument("--dimensions", type=int, default=768)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--serve-emulator", type=int, help=argparse.SUPPRESS)
    add_service_options(parser)
    parser.set_defaults(redis_url=os.environ.get("REDIS_URL"))
    args = parser.parse_args(argv)

    database_url, drop = fresh_database(args.postgres_url, prefix="chat_bench_retrieval_")
    emulator = Emulator()
    emulator.configure(reply="The checklist says so.")
    log_dir = Path(tempfile.mkdtemp(prefix="chat-bench-retrieval-"))
    env = worker_env(
        database_url=database_url,
        redis_url=args.redis_url,
        OLLAMA_URL=emulator.url,
        REALTIME_PREFIX=f"bench-retrieval-{uuid.uuid4().hex[:8]}",
        BENCH_UNTHROTTLED="1",
        DEBUG="false",
    )
    worker = None
    try:
        migrate(env)
        worker = start_worker(env, log_dir)
        (user,) = asyncio.run(register(worker.url, 1, f"r{uuid.uuid4().hex[:6]}-"))
        headers = {"Authorization": f"Bearer {user['access']}"}
        rooms = {}
        with httpx.Client(base_url=worker.url, headers=headers, timeout=30) as http:
            for name in ("plain", "files"):
                made = http.post("/api/chat/sessions", json={"title": name})
                made.raise_for_status()
                rooms[name] = made.json()["id"]
            message = http.post(
                "/api/chat/messages", json={"sessionId": rooms["files"], "content": "manuals"}
            )
            message.raise_for_status()
        started = perf()
        passages = seed(database_url, rooms["files"], message.json()["id"], args)
        print(f"seeded {passages} passages in {perf() - started:.1f} s", file=sys.stderr)
        result = asyncio.run(measure(worker.url, user, rooms, args.requests))
        text = report(args, result, passages)
        print(text)
        if args.write:
            write_section(args.write, HEADING, text)
    finally:
        if worker is not None:
            stop_process(worker.process)
        emulator.stop()
        drop()


if __name__ == "__main__":
    if "--serve-emulator" in sys.argv:
        from bench.stream import serve_emulator

        serve_emulator(int(sys.argv[sys.argv.index("--serve-emulator") + 1]))
    else:
        main()
