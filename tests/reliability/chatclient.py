"""A test client for ``/ws/chat/`` that follows docs/websocket.md to the letter, and keeps
score.

Per room it applies durable frames in ``seq`` order exactly once: a repeat (``seq <=
lastSeq``) is dropped, a jump is held until ``session:join {lastSeq}`` fills the gap. It
reconnects when its socket drops (to another worker if there is one), rejoins every room
from its ``lastSeq``, and re-sends a message whose ack it never saw with the same
``clientId``. Everything it saw is recorded, so a test can assert on it afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import websockets

DURABLE = ("message:new", "message:edited", "message:deleted", "message:reaction:update")
GAP_GRACE_S = 2.0
REQUEST_TIMEOUT_S = 45.0


class Disconnected(Exception):
    """The socket closed before the reply came."""


@dataclass
class RoomLog:
    last: int = 0
    applied: list[int] = field(default_factory=list)
    frames: dict[int, dict] = field(default_factory=dict)
    held: dict[int, dict] = field(default_factory=dict)
    gap_since: float | None = None


def room_of(frame: dict) -> str:
    data = frame["data"]
    return data.get("sessionId") or data["message"]["sessionId"]


class ChatClient:
    def __init__(
        self,
        urls: list[str],
        user: dict,
        rooms: list[str],
        *,
        first: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.urls = urls
        self.user = user
        self.rooms = {room: RoomLog() for room in rooms}
        self.preferred = first
        self.rng = rng or random.Random(user["id"])
        self.ws = None
        self.ready = asyncio.Event()
        self.stopping = False
        self._refs = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._supervisor: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._gap_task: asyncio.Task | None = None
        self._syncing: set[str] = set()
        # score
        self.acked: list[dict] = []
        self.errors: Counter = Counter()
        self.error_samples: list[dict] = []
        self.close_codes: list[int | None] = []
        self.connects = 0
        self.connect_failures = 0
        self.resends = 0
        self.duplicates_dropped = 0
        self.gaps = 0
        self.live_applied = 0
        self.replay_applied = 0
        self.last_connected_at: float | None = None
        self.ready_times: list[float] = []

    # --- connection ------------------------------------------------------------------------

    def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise())
        self._gap_task = asyncio.create_task(self._watch_gaps())

    async def _supervise(self) -> None:
        """Keep a socket open and every room joined until ``stop``."""
        attempt = 0
        while not self.stopping:
            url = self.urls[self.preferred % len(self.urls)]
            try:
                await self._open(url)
                attempt = 0
            except Exception:
                self.connect_failures += 1
                attempt += 1
                self.preferred += 1
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + self.rng.random()))
                continue
            reader = self._reader
            try:
                await self._join_all()
                self.ready_times.append(time.monotonic())
                self.ready.set()
            except (Disconnected, websockets.ConnectionClosed):
                pass
            except TimeoutError:
                # A join that got no reply: start again on a new socket.
                await self.drop(abrupt=True)
            await asyncio.wait([reader])
            self.ready.clear()
            if self.stopping:
                return
            # Go elsewhere next time (the worker may be gone), after a short backoff.
            self.preferred += 1
            await asyncio.sleep(0.05 + 0.2 * self.rng.random())

    async def _open(self, url: str) -> None:
        ws = await websockets.connect(
            f"{url}?token={self.user['access']}",
            max_size=2**24,
            open_timeout=30,
            ping_interval=None,
            close_timeout=5,
        )
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        except BaseException:
            await ws.close()
            raise
        if first.get("event") != "connection:success":
            await ws.close()
            raise RuntimeError(f"unexpected first frame {first}")
        self.ws = ws
        self.connects += 1
        self.last_connected_at = time.monotonic()
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                event = frame.get("event")
                if event in ("ack", "error"):
                    future = self._pending.pop(frame.get("ref"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                    elif event == "error":
                        self.record_error(frame)
                elif event in DURABLE and "seq" in frame:
                    self._durable(frame, live=True)
        except websockets.ConnectionClosed:
            pass
        finally:
            code = ws.close_code
            self.close_codes.append(code)
            if self.ws is ws:
                self.ws = None
            for ref, future in list(self._pending.items()):
                if not future.done():
                    future.set_exception(Disconnected())
                self._pending.pop(ref, None)

    async def drop(self, *, abrupt: bool) -> None:
        """End the socket as a client would (a clean close, or a network cut); the
        supervisor reconnects to the next worker."""
        ws = self.ws
        if ws is None:
            return
        if abrupt:
            ws.transport.abort()
        else:
            await ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader])

    async def stop(self) -> None:
        self.stopping = True
        for task in (self._gap_task,):
            if task is not None:
                task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._supervisor is not None:
            await asyncio.wait([self._supervisor], timeout=15)
            self._supervisor.cancel()

    # --- requests --------------------------------------------------------------------------

    async def request(self, event: str, data: dict, within: float = REQUEST_TIMEOUT_S) -> dict:
        ws = self.ws
        if ws is None:
            raise Disconnected()
        ref = next(self._refs)
        future = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
        except websockets.ConnectionClosed as exc:
            self._pending.pop(ref, None)
            raise Disconnected() from exc
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self._pending.pop(ref, None)

    def record_error(self, frame: dict) -> None:
        """Counts an error reply by code and keeps the first few for the test's report."""
        code = frame["data"].get("code")
        if code == "INTERNAL" and "retryAfter" in frame["data"]:
            # The platform's "database / Redis unavailable, retry" refusal.
            code = "UNAVAILABLE"
        self.errors[code] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(frame)

    async def send_message(
        self, room: str, content: str, client_id: str, *, deadline: float, retry_on=()
    ) -> dict | None:
        """Send until acked: after a disconnect, a timeout, an error with ``retryAfter``
        (RATE_LIMITED, or the database / Redis unavailable: waiting as told) or an error code
        in ``retry_on``, with the same ``clientId``.
        Returns the acked message, or None if another error answered (recorded)."""
        tried = False
        while time.monotonic() < deadline:
            await self.wait_ready(deadline)
            if tried:
                self.resends += 1
            tried = True
            try:
                reply = await self.request(
                    "message:send", {"sessionId": room, "content": content, "clientId": client_id}
                )
            except (Disconnected, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            if reply["event"] == "ack":
                message = reply["data"]
                self.acked.append(message)
                return message
            self.record_error(reply)
            code = reply["data"].get("code")
            if "retryAfter" in reply["data"]:
                # RATE_LIMITED, or a backend briefly unavailable: wait as told, send again.
                await asyncio.sleep(reply["data"]["retryAfter"] + 0.2 * self.rng.random())
                continue
            if code in retry_on:
                await asyncio.sleep(0.3 + 0.3 * self.rng.random())
                continue
            return None
        raise TimeoutError(f"{self.user['username']}: {client_id} not acked in time")

    async def wait_ready(self, deadline: float) -> None:
        """Returns once the client is connected and has rejoined its rooms."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self.user['username']}: not connected in time")
        await asyncio.wait_for(self.ready.wait(), remaining)

    # --- rooms and seq ---------------------------------------------------------------------

    async def _join_all(self) -> None:
        for room in self.rooms:
            await self.sync(room)

    async def sync(self, room: str, *, deadline: float | None = None) -> None:
        """``session:join {lastSeq}`` until nothing more is missed (waiting out throttles)."""
        deadline = deadline or time.monotonic() + 120
        log = self.rooms[room]
        while time.monotonic() < deadline:
            reply = await self.request("session:join", {"sessionId": room, "lastSeq": log.last})
            if reply["event"] == "error":
                self.record_error(reply)
                # RATE_LIMITED, or a backend briefly unavailable: both say when to retry.
                if "retryAfter" in reply["data"]:
                    await asyncio.sleep(reply["data"]["retryAfter"] + 0.1)
                    continue
                raise AssertionError(f"join refused: {reply}")
            for frame in reply["data"]["missed"]:
                self._durable(frame, live=False)
            if not reply["data"]["hasMore"]:
                return
        raise TimeoutError(f"{self.user['username']}: could not sync {room}")

    def _durable(self, frame: dict, *, live: bool) -> None:
        room = room_of(frame)
        log = self.rooms.get(room)
        if log is None:
            return
        seq = frame["seq"]
        if seq <= log.last:
            self.duplicates_dropped += 1
            return
        if seq > log.last + 1:
            if seq not in log.held:
                log.held[seq] = frame
            if log.gap_since is None:
                log.gap_since = time.monotonic()
            return
        self._apply(log, frame, live=live)
        while log.last + 1 in log.held:
            self._apply(log, log.held.pop(log.last + 1), live=live)
        for stale in [s for s in log.held if s <= log.last]:
            del log.held[stale]
        log.gap_since = time.monotonic() if log.held else None

    def _apply(self, log: RoomLog, frame: dict, *, live: bool) -> None:
        log.last = frame["seq"]
        log.applied.append(frame["seq"])
        log.frames[frame["seq"]] = frame
        if live:
            self.live_applied += 1
        else:
            self.replay_applied += 1

    async def _watch_gaps(self) -> None:
        """A gap that live delivery does not fill within a grace period (frames of two
        workers may cross) is filled by replay."""
        while True:
            await asyncio.sleep(0.5)
            if not self.ready.is_set():
                continue
            now = time.monotonic()
            for room, log in self.rooms.items():
                if log.gap_since is None or now - log.gap_since < GAP_GRACE_S:
                    continue
                if room in self._syncing:
                    continue
                self.gaps += 1
                self._syncing.add(room)
                try:
                    await self.sync(room)
                except (Disconnected, TimeoutError):
                    pass
                finally:
                    self._syncing.discard(room)


async def final_sync(clients: list[ChatClient], within: float = 150) -> None:
    """Every client replays every room from its lastSeq ("after live delivery plus lastSeq
    replay"), waiting out join throttles if it must."""
    deadline = time.monotonic() + within

    async def one(client: ChatClient) -> None:
        while True:
            await client.wait_ready(deadline)
            try:
                for room in client.rooms:
                    await client.sync(room, deadline=deadline)
                return
            except Disconnected:
                continue

    await asyncio.gather(*(one(c) for c in clients))


def first_difference(a: list, b: list) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


def check_rooms(clients: list[ChatClient], truth: dict[str, list[dict]]) -> dict:
    """Assert every client holds each room's whole log once, in seq order, matching the
    database; every acked message is stored once. Returns counts for the report."""
    acked_by_room: dict[str, list[dict]] = {}
    for client in clients:
        for message in client.acked:
            acked_by_room.setdefault(message["sessionId"], []).append(message)
    stored = 0
    for room, messages in truth.items():
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"{room}: stored seqs {seqs[:20]}..."
        by_seq = {m["seq"]: m for m in messages}
        client_ids = Counter(m["clientId"] for m in messages if m["clientId"])
        twice = [cid for cid, n in client_ids.items() if n > 1]
        assert not twice, f"{room}: clientIds stored twice: {twice[:5]}"
        for message in acked_by_room.get(room, []):
            assert by_seq.get(message["seq"], {}).get("id") == message["id"], (
                f"{room}: acked message {message['id']} (seq {message['seq']}) is not stored"
            )
        stored += len(messages)
    for client in clients:
        for room, log in client.rooms.items():
            expected = [m["seq"] for m in truth[room]]
            assert log.applied == expected, (
                f"{client.user['username']} in {room}: applied {len(log.applied)} frames, "
                f"stored {len(expected)}; first difference at "
                f"{first_difference(log.applied, expected)}"
            )
            for seq, frame in log.frames.items():
                assert frame["data"]["message"]["id"] == truth[room][seq - 1]["id"]
    acked = sum(len(c.acked) for c in clients)
    return {
        "acked": acked,
        "stored": stored,
        "delivered_live": sum(c.live_applied for c in clients),
        "delivered_by_replay": sum(c.replay_applied for c in clients),
        "duplicates_dropped": sum(c.duplicates_dropped for c in clients),
        "gaps_filled": sum(c.gaps for c in clients),
        "resends": sum(c.resends for c in clients),
        "connects": sum(c.connects for c in clients),
        "errors": sum((c.errors for c in clients), Counter()),
        "close_codes": Counter(code for c in clients for code in c.close_codes),
    }
