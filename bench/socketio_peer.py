"""A peer for the fan-out benchmark: a python-socketio chat relay, the stack Open WebUI runs.

``bench/fanout.py`` serves this with uvicorn in a process of its own (``--peers socketio``)
and drives it with the same rooms, members, senders and measurements as the platform, to
tell what a common Python alternative carries for the same job on the same machine:

- ``socketio.AsyncServer(async_mode="asgi")`` wrapped in ``socketio.ASGIApp``, websocket
  transport only (as Open WebUI configures it when websockets are on).
- Authentication on connect is a lookup of the ``auth`` token in a table the benchmark hands
  out (``PEER_USERS``: a JSON file ``{token: {"id", "username", "rooms"}}``), kept in
  memory: no JWT, no user row; a shared secret per user, the least an authenticated
  server does. An unknown token is refused (``CONNECT_ERROR``).
- On connect the socket enters the rooms its user belongs to (Open WebUI enters a user's
  channels the same way); nothing to join afterwards.
- ``message:send`` {sessionId, content, clientId}: the contract's throttle, 30 per user per
  minute, counted per user in this process's memory (a sliding window; beyond it the
  ack is ``{"error": {"code": "RATE_LIMITED", ...}}`` and nothing is stored); then ONE
  ``INSERT`` into ``messages`` (id uuid, room, author, content, created_at) through a
  ``psycopg_pool.AsyncConnectionPool`` of 10 connections in autocommit (one round trip, no
  event log, no seq),
  then ``sio.emit("message:new", {"message": ...}, room=...)`` to the room, sender
  included, and the message as the ack, as the platform answers its sender.
- The broadcast message has the fields of the platform's message object (``seq`` null), so
  a delivery carries about as many bytes as the platform's ``message:new`` frame.

Configuration: ``PEER_DATABASE_URL`` (a PostgreSQL database of its own; the table is made
here if missing) and ``PEER_USERS``. One process: python-socketio needs a message queue
(Redis) to span several, which this peer does not use.
"""

import json
import math
import os
import time
import uuid
from collections import defaultdict, deque
from datetime import UTC, datetime

import socketio
from psycopg_pool import AsyncConnectionPool

SEND_LIMIT = 30  # message:send per user per minute (CONTRACT section 3)
SEND_WINDOW = 60.0
# Connections open from the start: a pool that grows on demand opens them while the first
# messages wait, which a short benchmark would count as the peer's latency.
POOL_SIZE = 10

with open(os.environ["PEER_USERS"]) as users_file:
    USERS: dict[str, dict] = json.load(users_file)

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins=[])
pool = AsyncConnectionPool(
    os.environ["PEER_DATABASE_URL"],
    min_size=POOL_SIZE,
    max_size=POOL_SIZE,
    kwargs={"autocommit": True},
    open=False,
)
members: dict[str, dict] = {}  # sid -> its user
sends: dict[int, deque] = defaultdict(deque)  # user id -> times of its recent sends


async def startup() -> None:
    await pool.open(wait=True)
    async with pool.connection() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS messages (id uuid PRIMARY KEY, room text NOT NULL, "
            "author integer NOT NULL, content text NOT NULL, created_at timestamptz NOT NULL)"
        )


async def shutdown() -> None:
    await pool.close()


@sio.event
async def connect(sid, environ, auth):
    """Called on a Socket.IO connect: the token names the user, whose rooms the socket
    enters before the client hears it is connected."""
    user = USERS.get((auth or {}).get("token", ""))
    if user is None:
        raise socketio.exceptions.ConnectionRefusedError("unknown token", {"code": "UNAUTHORIZED"})
    members[sid] = user
    for room in user["rooms"]:
        await sio.enter_room(sid, room)


@sio.event
async def disconnect(sid, reason):
    members.pop(sid, None)


def throttled(user_id: int) -> float:
    """Seconds until the user may send again, 0 if now (and then the send is counted)."""
    now = time.monotonic()
    recent = sends[user_id]
    while recent and now - recent[0] >= SEND_WINDOW:
        recent.popleft()
    if len(recent) >= SEND_LIMIT:
        return SEND_WINDOW - (now - recent[0])
    recent.append(now)
    return 0.0


@sio.on("message:send")
async def message_send(sid, data):
    """Called on ``message:send``: throttle, store, broadcast to the room; the ack is the
    message or an error."""
    user = members[sid]
    wait = throttled(user["id"])
    if wait:
        return {
            "error": {
                "code": "RATE_LIMITED",
                "message": "too many messages",
                "retryAfter": math.ceil(wait),
            }
        }
    room, content = data.get("sessionId"), data.get("content")
    if room not in user["rooms"] or not isinstance(content, str):
        return {"error": {"code": "FORBIDDEN", "message": "not a member of that room"}}
    message_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO messages (id, room, author, content, created_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (message_id, room, user["id"], content, now),
        )
    stamp = now.isoformat().replace("+00:00", "Z")
    message = {
        "id": str(message_id), "sessionId": room, "seq": None,
        "author": {"id": user["id"], "username": user["username"]}, "agentId": None,
        "role": "user", "content": content, "metadata": {}, "tokens": None,
        "parentMessageId": None, "replyCount": 0, "isEdited": False, "editedAt": None,
        "isDeleted": False, "deletedAt": None, "createdAt": stamp, "updatedAt": stamp,
        "reactions": [], "attachments": [], "clientId": data.get("clientId"),
    }  # fmt: skip
    await sio.emit("message:new", {"message": message}, room=room)
    return {"message": message}


application = socketio.ASGIApp(sio, on_startup=startup, on_shutdown=shutdown)
