"""Helpers for room-stream tests: read a socket until a stream ends, stop the streams of
this worker and wait for their tasks to finish."""

from __future__ import annotations

import asyncio
import time

from llm.services.room_stream import running
from llm.stream_state import get_stream_state

FINAL_EVENTS = ("stream:complete", "stream:stopped", "stream:error")
# Generous: a loaded 2-core machine must not fail these, and a hang still ends.
WITHIN_S = 30


async def receive(ws, within: float = WITHIN_S) -> dict:
    """The socket's next frame: first those a helper read ahead (``ws.pending``)."""
    pending = ws.__dict__.setdefault("pending", [])
    if pending:
        return pending.pop(0)
    return await ws.receive_json_from(timeout=within)


async def frames_until_end(ws, stream_id: str | None = None, within: float = WITHIN_S):
    """Every frame up to and including the stream's final event (stream:complete, stopped
    or error)."""
    frames = []
    async with asyncio.timeout(within):
        while True:
            frame = await receive(ws, within)
            frames.append(frame)
            data = frame.get("data") or {}
            if frame["event"] in FINAL_EVENTS and stream_id in (None, data.get("streamId")):
                return frames


# What a socket may get at any moment, whatever a test does: the interval aggregates.
AMBIENT_EVENTS = ("presence:changes", "typing:update", "receipts:update")


async def frames_arriving(ws, seconds: float) -> list[dict]:
    """Every frame that arrives within ``seconds``."""
    frames = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await ws.receive_nothing(timeout=left):
            break
        frames.append(await ws.receive_json_from())
    return frames


async def request_seeing(ws, event: str, data: dict, ref="r") -> tuple[dict, list[dict]]:
    """Send a frame; its reply and every frame that arrived before the reply (a stream's
    first frames may overtake the reply to ``stream:request``)."""
    await ws.send_json_to({"event": event, "data": data, "ref": ref})
    before = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = await receive(ws)
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame, before
            before.append(frame)


async def until(ws, *events: str) -> list[dict]:
    """Frames up to and including the first named one of ``events``."""
    frames = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = await ws.receive_json_from(timeout=WITHIN_S)
            frames.append(frame)
            if frame["event"] in events:
                return frames


async def streams_finished(within: float = WITHIN_S) -> None:
    """Wait until no room stream runs on this worker (their tasks have saved and cleaned
    up), so a test never ends with one still writing."""
    tasks = [room.task for room in list(running.values()) if room.task is not None]
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), within)


async def streams_stopped(within: float = WITHIN_S) -> None:
    """Stop every room stream running on this worker, as ``stream:stop`` would (a stop
    request in the shared state), and wait for them to finish."""
    for stream_id in list(running):
        await get_stream_state().stream_stop_request(str(stream_id), {"by": None}, ttl=60)
    await streams_finished(within)


def chunks_of(frames, stream_id: str | None = None) -> list[dict]:
    return [
        f["data"]
        for f in frames
        if f["event"] == "stream:chunk" and stream_id in (None, f["data"]["streamId"])
    ]
