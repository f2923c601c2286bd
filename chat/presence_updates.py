"""``presence:changes``: announcing who went online or offline, gathered per worker, and
forwarding only what is still true when it arrives.

A user is online while any of their connections is open, on any worker; the shared state
counts them (``chat.state``). A worker notes the users whose count it moved from or to zero
(``PresenceBatcher.changed``) and flushes them every ``PRESENCE_BROADCAST_INTERVAL_MS``: at
the flush, each user's status is read from the shared count and announced only if it
differs from their status before their first change in the interval, so a reload inside
the interval announces nothing. A flush costs one read of the count for all of its users,
one ``lastSeenAt`` write for those now offline, one query for the sessions of those that
changed, and one frame per session listing its changed users.

Announcements still travel separately: a reload's close on one worker can be announced after
its new connection's open on another. So a socket that receives a change forwards only the
entries that still match the count, read after it arrived (``OnlineReads``): the last change
is always forwarded, an older one that contradicts it never, in whatever order they come;
and a socket never tells its own user that they are offline. A frame with no entry left is
dropped.

Users whose worker died have no close to report: the heartbeat's sweep finds them once
their entries expired (``chat.timers``), and ``presence_lapsed`` hands them to the same
batcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.serializers import render_user

from . import broadcaster, event_types
from .events import encode, group_for_session
from .models import Membership
from .per_loop import PerLoop
from .serializers import iso
from .state import get_state

logger = logging.getLogger(__name__)

# The channel-layer message type a consumer handles to forward the presence changes that
# are still true (``ChatConsumer.presence_changes``).
PRESENCE_MESSAGE_TYPE = "presence.changes"
# At most this many entries in one frame (about 100 bytes each, well under the frame cap):
# a big room whose members all came back in one interval gets several frames.
FRAME_CHANGES_MAX = 500


def presence_message(changes: list[dict]) -> dict:
    """The channel-layer message of some presence changes (``event_types.presence_change``
    entries): the encoded frame, and the entries the receiving socket checks before
    forwarding it."""
    frame = {
        "event": event_types.PRESENCE_CHANGES,
        "data": event_types.presence_changes(changes=changes),
    }
    return {"type": PRESENCE_MESSAGE_TYPE, "text": encode(frame), "changes": changes}


def presence_frame_text(message: dict, kept: list[dict]) -> str:
    """The frame to forward when only ``kept`` of the message's changes still hold."""
    if len(kept) == len(message["changes"]):
        return message["text"]
    return encode(
        {
            "event": event_types.PRESENCE_CHANGES,
            "data": event_types.presence_changes(changes=kept),
        }
    )


def presence_record(*, offline: list[int], changed: list[int]) -> dict:
    """Record that ``offline`` users were last seen now (one write), and each session's
    changes among ``changed`` users (one query): session id -> changes."""
    now = timezone.now()
    if offline:
        get_user_model().objects.filter(pk__in=offline).update(last_seen_at=now)
    gone = set(offline)
    memberships = (
        Membership.objects.filter(user_id__in=changed)
        .select_related("user")
        .only("session_id", "user__id", "user__username")
        .order_by("session_id", "user_id")
    )
    entries: dict[int, dict] = {}
    by_session: dict = defaultdict(list)
    for membership in memberships:
        entry = entries.get(membership.user_id)
        if entry is None:
            is_gone = membership.user_id in gone
            entry = entries[membership.user_id] = event_types.presence_change(
                user=render_user(membership.user),
                status="offline" if is_gone else "online",
                last_seen_at=iso(now) if is_gone else None,
            )
        by_session[membership.session_id].append(entry)
    return by_session


class PresenceBatcher:
    """One event loop's presence changes, flushed every ``PRESENCE_BROADCAST_INTERVAL_MS``."""

    def __init__(self) -> None:
        self._before: dict[int, bool] = {}  # user id -> online before their first change
        self._flush: asyncio.Task | None = None

    def changed(self, user_id: int, *, online_before: bool) -> None:
        """Called when this worker moved the user's connection count from zero (``online_
        before`` False) or to zero (True), or the sweep found them gone (True)."""
        self._before.setdefault(user_id, online_before)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(settings.PRESENCE_BROADCAST_INTERVAL_MS / 1000)
        finally:
            self._flush = None
        before, self._before = self._before, {}
        try:
            await self.flush(before)
        except Exception:
            logger.warning("presence flush failed", exc_info=True)

    async def flush(self, before: dict[int, bool]) -> None:
        """Announce the users whose status now differs from ``before``."""
        online = await get_state().online_now(before)
        changed = [user_id for user_id, was in before.items() if (user_id in online) != was]
        if not changed:
            return
        offline = [user_id for user_id in changed if user_id not in online]
        by_session = await database_sync_to_async(presence_record)(offline=offline, changed=changed)
        for session_id, changes in by_session.items():
            for start in range(0, len(changes), FRAME_CHANGES_MAX):
                message = presence_message(changes[start : start + FRAME_CHANGES_MAX])
                try:
                    await broadcaster.send(group_for_session(session_id), message)
                except Exception:
                    logger.warning("presence broadcast to %s failed", session_id, exc_info=True)


# The running event loop's batcher (its flush is a task of that loop).
presence_batcher = PerLoop(PresenceBatcher)


async def presence_lapsed(user_ids: list[int]) -> None:
    """Called by the heartbeat's sweep with users whose last connection vanished without a
    close (a killed worker): they go out with the next flush, as offline if they still are."""
    batcher = presence_batcher()
    for user_id in user_ids:
        batcher.changed(user_id, online_before=True)


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


# The running event loop's reads (futures and tasks are bound to their loop).
online_reads = PerLoop(OnlineReads)
