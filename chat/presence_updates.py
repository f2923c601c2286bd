"""``presence:update``: announcing that a user went online or offline, and forwarding only
what is still true when it arrives.

A user is online while any of their connections is open, on any worker; the shared state
counts them (``chat.state``). Opens and closes are announced as they change that count
from or to zero, but the announcements travel separately: a reload's close (announced
"offline" after a database write) can reach a member after the new connection's "online",
from another worker even. So an announcement is not trusted as it is: each socket that
receives one forwards it only if it still matches the count, read after it arrived
(``OnlineReads``). The last change is always forwarded, an older one that contradicts it
never, in whatever order they come; and a socket never tells its own user that they are
offline.

Users whose worker died have no close to announce: the heartbeat's sweep finds them once
their entries expired (``chat.timers``) and ``presence_lapsed`` announces them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.serializers import render_user

from . import broadcaster, event_types
from .events import encode, group_for_session
from .models import Membership
from .serializers import iso
from .state import get_state

logger = logging.getLogger(__name__)

# The channel-layer message type a consumer handles to forward a presence change if it is
# still true (``ChatConsumer.presence_update``).
PRESENCE_MESSAGE_TYPE = "presence.update"


def presence_message(*, user: dict, online: bool, last_seen_at: str | None) -> dict:
    """The channel-layer message of a presence change: the encoded frame, and what the
    receiving socket checks before forwarding it."""
    frame = {
        "event": event_types.PRESENCE_UPDATE,
        "data": event_types.presence_update(
            user=user, status="online" if online else "offline", last_seen_at=last_seen_at
        ),
    }
    return {
        "type": PRESENCE_MESSAGE_TYPE,
        "text": encode(frame),
        "userId": user["id"],
        "online": online,
    }


def _session_ids(user_ids) -> dict[int, list]:
    by_user: dict[int, list] = {uid: [] for uid in user_ids}
    rows = Membership.objects.filter(user_id__in=by_user).values_list("user_id", "session_id")
    for user_id, session_id in rows:
        by_user[user_id].append(session_id)
    return by_user


async def _send(session_ids, message: dict) -> None:
    for session_id in session_ids:
        try:
            await broadcaster.send(group_for_session(session_id), message)
        except Exception:
            logger.warning("presence broadcast to %s failed", session_id, exc_info=True)


async def presence_broadcast(*, user: dict, online: bool, last_seen_at: str | None) -> None:
    """Tell everyone sharing a session with ``user`` that they went online or offline."""
    session_ids = (await database_sync_to_async(_session_ids)([user["id"]]))[user["id"]]
    await _send(session_ids, presence_message(user=user, online=online, last_seen_at=last_seen_at))


@database_sync_to_async
def presence_touch_last_seen(user_id: int) -> str:
    """Record that the user was last seen now; the time, as frames show it."""
    now = timezone.now()
    get_user_model().objects.filter(pk=user_id).update(last_seen_at=now)
    return iso(now)


def _lapsed_users(user_ids: list[int]) -> tuple[list[dict], str, dict[int, list]]:
    now = timezone.now()
    users = get_user_model().objects.filter(pk__in=user_ids)
    users.update(last_seen_at=now)
    return [render_user(u) for u in users.order_by("pk")], iso(now), _session_ids(user_ids)


async def presence_lapsed(user_ids: list[int]) -> None:
    """Called by the heartbeat's sweep with users whose last connection vanished without a
    close (a killed worker): announce them offline."""
    users, last_seen_at, session_ids = await database_sync_to_async(_lapsed_users)(user_ids)
    for user in users:
        message = presence_message(user=user, online=False, last_seen_at=last_seen_at)
        await _send(session_ids[user["id"]], message)


class OnlineReads:
    """Whether a user is online now, for the sockets of one event loop that received a
    presence change: one read of the shared state serves every socket that asked about
    that user before the read started, and none that asked after it started (their change
    may be newer than what it reads)."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future] = {}
        self._reads: set[asyncio.Task] = set()

    async def online(self, user_id: int) -> bool:
        future = self._waiting.get(user_id)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._waiting[user_id] = loop.create_future()
            task = loop.create_task(self._read(user_id, future))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)
        return await asyncio.shield(future)

    async def _read(self, user_id: int, future: asyncio.Future) -> None:
        del self._waiting[user_id]  # who asks from now on waits for a read after this one
        try:
            online = user_id in await get_state().online_now([user_id])
        except Exception:
            logger.warning("presence read failed", exc_info=True)
            online = False
        future.set_result(online)


_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def online_reads() -> OnlineReads:
    """The running event loop's reads (futures and tasks are bound to their loop)."""
    loop = asyncio.get_running_loop()
    reads = _by_loop.get(loop)
    if reads is None:
        reads = _by_loop[loop] = OnlineReads()
    return reads
