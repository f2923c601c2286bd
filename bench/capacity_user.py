"""One simulated user of ``bench/capacity.py``, behaving as the web app does, and the
``Recorder`` every user reports to.

A user logs in through the token endpoint, opens one socket, joins their rooms (the open one
first) and then, until the run ends: sends a message every ``MESSAGE_EVERY_S`` on average in
the open room (``typing:start`` a moment before, ``typing:stop`` on send; one in
``MESSAGES_PER_ASSISTANT`` is a ``stream:request`` instead), answers each burst of other
people's messages with one receipt for the newest (after the web app's 600 ms debounce:
``message:seen`` if looking at the open room, else ``message:delivered``), reacts to a recent
message now and then, and reconnects now and then (rejoining with ``lastSeq``, as
``chat-client.js`` does). Only client -> server events and their acks (docs/websocket.md)
are relied on; any other server frame (receipts, typing, presence, streams) is only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench import capacity_model as model

REPLY_TIMEOUT_S = 10.0  # an ack or error later than this counts as an error (NO_REPLY)
RETRY_S = 1.0  # wait before reconnecting after an unexpected close (chat-client's first step)
PROMPT = "Summarise the discussion so far."
# Every time stamp: sub-millisecond (uvloop's ``loop.time()`` moves in whole milliseconds).
perf = time.perf_counter


@dataclass
class Stats:
    """What one step saw: errors over the whole step, the rest inside its measured window."""

    users: int
    latencies: list[float] = field(default_factory=list)  # send-to-receive, s
    replies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    error_texts: dict[str, str] = field(default_factory=dict)
    frames: Counter = field(default_factory=Counter)  # received in the window, by event name
    sent: Counter = field(default_factory=Counter)  # sent in the window, by event name
    measuring: bool = False


class Recorder:
    """The current step's ``Stats`` and what is known about every message sent: the seq each
    acked ``message:send`` got, per session (the ledger the loss check compares to)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag  # starts every clientId of this run
        self.stats = Stats(users=0)
        self.acked: dict[str, dict[int, str]] = defaultdict(dict)  # session -> seq -> id
        self.http: httpx.AsyncClient | None = None

    def error(self, kind: str, text: str = "") -> None:
        self.stats.errors[kind] += 1
        self.stats.error_texts.setdefault(kind, text[:200])


class User:
    def __init__(
        self, index: int, username: str, password: str, sessions: list[str], url: str,
        ws_url: str, recorder: Recorder, rng: random.Random,
    ) -> None:  # fmt: skip
        self.index = index
        self.username = username
        self.password = password
        self.sessions = sessions  # joined, the open room first
        self.url, self.ws_url = url, ws_url
        self.rec = recorder
        self.rng = rng
        self.token = ""
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.tasks: list[asyncio.Task] = []
        self.ready = asyncio.Event()  # connected and joined
        self.stopping = False
        self.refs = 0
        self.pending: dict[str, tuple[str, float, asyncio.Future | None]] = {}
        self.first_seq: dict[str, int] = {}  # the session's lastSeq at the first join
        self.held: dict[str, set[int]] = defaultdict(set)  # seqs of durable frames held
        self.messages: dict[str, set[int]] = defaultdict(set)  # seqs of message:new held
        self.recent: deque[str] = deque(maxlen=10)  # message ids in the open room
        self.debounce: dict[str, asyncio.TimerHandle] = {}
        self.newest: dict[str, str] = {}  # session -> newest message by someone else
        self.sent = 0
        self.recovery: asyncio.Task | None = None
        self.sending: set[asyncio.Task] = set()  # frames on their way out

    # --- connection ---------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, connect, join; then behave until stopped."""
        try:
            response = await self.rec.http.post(
                f"{self.url}/api/auth/token",
                json={"username": self.username, "password": self.password},
            )
            response.raise_for_status()
            self.token = response.json()["access"]
            await self.connect()
        except (httpx.HTTPError, OSError, RuntimeError, TimeoutError, WebSocketException) as exc:
            self.rec.error("login/connect", f"{type(exc).__name__}: {exc}")
            return
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self.talk()),
            loop.create_task(self.react()),
            loop.create_task(self.reconnects()),
        ]

    async def connect(self) -> None:
        self.ready.clear()
        ws = await connect(
            f"{self.ws_url}?token={self.token}",
            compression=None, max_size=2**22, ping_interval=None, open_timeout=30,
        )  # fmt: skip
        first = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), 30))
        if first.get("event") != "connection:success":
            await ws.close()
            raise RuntimeError(f"first frame {first.get('event')}: {first.get('data')}")
        self.ws = ws
        self.reader = asyncio.get_running_loop().create_task(self.read(ws))
        try:
            for session in self.sessions:
                await self.join(session)
        except BaseException:
            self.ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        self.ready.set()

    async def join(self, session: str) -> int:
        """``session:join`` (with ``lastSeq`` once joined before), its pages followed while
        ``hasMore``; the session's newest seq."""
        last = self.watermark(session) if session in self.first_seq else None
        while True:
            data = {"sessionId": session}
            if last is not None:
                data["lastSeq"] = last
            reply = await self.request("session:join", data)
            if reply.get("event") != "ack":
                raise RuntimeError(f"session:join: {reply.get('data')}")
            ack = reply["data"]
            self.first_seq.setdefault(session, ack["lastSeq"])
            missed = ack.get("missed") or []
            if not ack.get("hasMore") or not missed:
                return ack["lastSeq"]
            last = missed[-1]["seq"]

    def watermark(self, session: str) -> int:
        """The highest seq up to which this user holds every durable frame of the session."""
        seq, held = self.first_seq[session], self.held[session]
        while seq + 1 in held:
            seq += 1
        return seq

    async def stop(self) -> None:
        self.stopping = True
        for task in [*self.tasks, self.recovery]:
            if task is None:
                continue
            task.cancel()
        for handle in self.debounce.values():
            handle.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()

    # --- frames in ----------------------------------------------------------------------

    async def read(self, ws) -> None:
        try:
            async for raw in ws:
                self.on_frame(orjson.loads(raw), perf())
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            return
        if ws is self.ws and not self.stopping:
            self.rec.error(f"closed {ws.close_code}", str(ws.close_reason))
            joined = self.ready.is_set()
            self.fail_pending("CLOSED")
            if joined:  # else a connect() is under way: its caller retries
                self.recovery = asyncio.get_running_loop().create_task(self.recover())

    def on_frame(self, frame: dict, now: float) -> None:
        event = frame.get("event")
        stats = self.rec.stats
        if stats.measuring:
            stats.frames[event] += 1
        if event in ("ack", "error") and frame.get("ref") in self.pending:
            name, sent_at, future = self.pending.pop(frame["ref"])
            if event == "error":
                data = frame.get("data") or {}
                self.rec.error(f"{name} {data.get('code')}", data.get("message", ""))
            else:
                if stats.measuring:
                    stats.replies[name].append(now - sent_at)
                self.on_ack(name, frame.get("data") or {})
            if future is not None and not future.done():
                future.set_result(frame)
            return
        if "seq" in frame:
            self.on_durable(frame, now)

    def on_ack(self, name: str, data: dict) -> None:
        if name == "message:send":
            self.rec.acked[data["sessionId"]][data["seq"]] = data["id"]
        elif name == "session:join":
            # Before any later frame of the session is read: its seqs count from here.
            self.first_seq.setdefault(data["session"]["id"], data["lastSeq"])
            for missed in data.get("missed") or []:
                self.on_durable(missed, None)

    def on_durable(self, frame: dict, now: float | None) -> None:
        """A frame with a seq, live (``now``) or replayed."""
        data = frame.get("data") or {}
        message = data.get("message") or {}
        session = data.get("sessionId") or message.get("sessionId")
        if session not in self.first_seq:
            return  # a queued frame of a room this user has not joined on this run
        self.held[session].add(frame["seq"])
        if frame.get("event") != "message:new":
            return
        self.messages[session].add(frame["seq"])
        author = (message.get("author") or {}).get("username")
        if session == self.sessions[0]:
            self.recent.append(message["id"])
        if now is None or author == self.username:
            return
        client_id = message.get("clientId") or ""
        if self.rec.stats.measuring and client_id.startswith(self.rec.tag):
            self.rec.stats.latencies.append(now - float(client_id.rsplit("-", 1)[1]))
        self.newest[session] = message["id"]
        handle = self.debounce.pop(session, None)
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        self.debounce[session] = loop.call_later(model.RECEIPT_DEBOUNCE_S, self.receipt, session)

    def receipt(self, session: str) -> None:
        """The web app's receipt for the newest message of a burst: seen when its user is
        looking at the open room, else delivered."""
        self.debounce.pop(session, None)
        looking = session == self.sessions[0] and self.rng.random() < model.LOOKING_SHARE
        event = "message:seen" if looking else "message:delivered"
        self.fire(event, {"messageId": self.newest[session]})

    # --- frames out ---------------------------------------------------------------------

    def fire(self, event: str, data: dict, future: asyncio.Future | None = None) -> None:
        """Send a frame now unless the socket is down (then it is not sent: a client
        reconnecting does not queue typing or receipts)."""
        if self.ws is None or (not self.ready.is_set() and event != "session:join"):
            if future is not None:
                future.set_result({"event": "error", "data": {"code": "DISCONNECTED"}})
            return
        self.refs += 1
        ref = str(self.refs)
        loop = asyncio.get_running_loop()
        self.pending[ref] = (event, perf(), future)
        if self.rec.stats.measuring:
            self.rec.stats.sent[event] += 1
        frame = orjson.dumps({"event": event, "data": data, "ref": ref}).decode()
        task = loop.create_task(self.send_raw(self.ws, frame))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    @staticmethod
    async def send_raw(ws, frame: str) -> None:
        """Send on the socket the frame was made for (a reconnect may have replaced it)."""
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

    async def request(self, event: str, data: dict) -> dict:
        future = asyncio.get_running_loop().create_future()
        self.fire(event, data, future)
        return await asyncio.wait_for(future, REPLY_TIMEOUT_S * 3)

    def fail_pending(self, why: str) -> None:
        for _, _, future in self.pending.values():
            if future is not None and not future.done():
                future.set_result({"event": "error", "data": {"code": why}})
        self.pending.clear()

    def overdue(self, now: float) -> None:
        """Count and forget requests with no reply after ``REPLY_TIMEOUT_S``."""
        late = [ref for ref, (_, at, _) in self.pending.items() if now - at > REPLY_TIMEOUT_S]
        for ref in late:
            name, _, future = self.pending.pop(ref)
            self.rec.error(f"{name} NO_REPLY", f"no reply in {REPLY_TIMEOUT_S:.0f} s")
            if future is not None and not future.done():
                future.set_result({"event": "error", "data": {"code": "NO_REPLY"}})

    # --- behaviour ----------------------------------------------------------------------

    async def talk(self) -> None:
        session = self.sessions[0]
        while True:
            lead = self.rng.uniform(*model.TYPING_LEAD_S)
            gap = self.rng.expovariate(1 / model.MESSAGE_EVERY_S)
            await asyncio.sleep(max(0.0, gap - lead))
            await self.ready.wait()
            self.fire("typing:start", {"sessionId": session})
            await asyncio.sleep(min(gap, lead))
            await self.ready.wait()
            self.sent += 1
            if self.rng.random() < 1 / model.MESSAGES_PER_ASSISTANT:
                self.fire("stream:request", {"sessionId": session, "prompt": PROMPT})
            else:
                stamp = f"{perf():.6f}"
                self.fire("message:send", {
                    "sessionId": session,
                    "content": f"message {self.sent} from {self.username}",
                    "clientId": f"{self.rec.tag}-{self.index}-{self.sent}-{stamp}",
                })  # fmt: skip
            self.fire("typing:stop", {"sessionId": session})

    async def react(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / model.REACTION_EVERY_S))
            await self.ready.wait()
            if self.recent:
                message = self.rng.choice(list(self.recent))
                self.fire("message:reaction", {"messageId": message, "emoji": "👍"})

    async def reconnects(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / model.RECONNECT_EVERY_S))
            await self.ready.wait()
            old, self.ws = self.ws, None
            self.ready.clear()
            with contextlib.suppress(Exception):
                await old.close()
            self.fail_pending("RECONNECTING")
            await self.recover()

    async def recover(self) -> None:
        """Reconnect and rejoin with ``lastSeq`` until it works (the reconnect of
        ``chat-client.js``), each failure counted."""
        self.ws = None
        self.ready.clear()
        while not self.stopping:
            try:
                await self.connect()
                return
            except (OSError, RuntimeError, TimeoutError, WebSocketException) as exc:
                if self.stopping:
                    return
                self.rec.error("reconnect", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(RETRY_S)
