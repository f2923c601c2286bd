"""``typing:update``: who started and who stopped typing in a session, gathered per worker.

A frame per keystroke burst to everyone in a busy room costs members x typists frames. So
a worker gathers each session's typing changes and sends them as one frame at most once per
``TYPING_BROADCAST_INTERVAL_MS``: the first change of a quiet session opens an interval, and
at its end whoever changed is listed under ``started`` or ``stopped``. A user who started and
stopped within the interval (or the other way round) is listed nowhere: nobody needs to
hear of it. The consumer reports only real changes (a ``typing:start`` from someone already
typing extends their expiry and reports nothing).

A frame with one user in it is kept from that user's own sockets (``exclude``); in a frame
with several, clients skip their own user.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from . import event_types
from .events import broadcast_async, group_for_session
from .per_loop import PerLoop


class _Pending:
    """One session's changes in the current interval: per user id, the user, whether they
    were typing before their first change in it, and whether they are typing now."""

    def __init__(self) -> None:
        self.users: dict[int, tuple[dict, bool, bool]] = {}

    def change(self, user: dict, typing: bool) -> None:
        previous = self.users.get(user["id"])
        before = (not typing) if previous is None else previous[1]
        self.users[user["id"]] = (user, before, typing)

    def lists(self) -> tuple[list[dict], list[dict]]:
        """(started, stopped): the users whose typing differs from before the interval."""
        started = [user for user, before, now in self.users.values() if now and not before]
        stopped = [user for user, before, now in self.users.values() if before and not now]
        return started, stopped


class TypingBatcher:
    """One event loop's typing changes, per session, and the flushes that send them."""

    def __init__(self) -> None:
        self._pending: dict = {}  # session id -> _Pending
        self._flushes: set[asyncio.Task] = set()

    def started(self, session_id, user: dict) -> None:
        """Called when ``user`` began typing in the session (not on a refresh)."""
        self._change(session_id, user, typing=True)

    def stopped(self, session_id, user: dict) -> None:
        """Called when ``user`` stopped typing there: a stop, expiry, leave or disconnect."""
        self._change(session_id, user, typing=False)

    def _change(self, session_id, user: dict, *, typing: bool) -> None:
        pending = self._pending.get(session_id)
        if pending is None:
            pending = self._pending[session_id] = _Pending()
            task = asyncio.get_running_loop().create_task(self._flush_later(session_id))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        pending.change(user, typing)

    async def _flush_later(self, session_id) -> None:
        await asyncio.sleep(settings.TYPING_BROADCAST_INTERVAL_MS / 1000)
        pending = self._pending.pop(session_id)
        started, stopped = pending.lists()
        changed = started + stopped
        if not changed:
            return
        await broadcast_async(
            group_for_session(session_id),
            {
                "event": event_types.TYPING_UPDATE,
                "data": event_types.typing_update(
                    session_id=session_id, started=started, stopped=stopped
                ),
            },
            exclude_user=changed[0]["id"] if len(changed) == 1 else None,
        )


# The running event loop's batcher (its flushes are tasks of that loop).
typing_batcher = PerLoop(TypingBatcher)
