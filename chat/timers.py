"""This worker's timers for its open WebSockets: the presence heartbeat and token expiry,
one service per event loop instead of sleeping tasks per connection.

Why: a sleeping task per connection and timer costs a Task, its coroutine, frame and
futures (over a kilobyte of every idle connection), and a heartbeat per connection costs
a Redis round trip per connection every ``PRESENCE_HEARTBEAT`` seconds: with 10,000 idle
sockets those came due in bursts after every pause of the loop and exhausted the Redis
pool (docs/benchmarks.md, "Idle connections"). Here one task refreshes every registered
connection's presence in a few pipelined Redis calls per beat, and one loop timer, armed
for the earliest deadline of a heap, closes the connections whose access token expired.

Each beat also sweeps the shared presence for users whose last entries expired (their worker
was killed, so nobody announced them offline) and hands them to the ``lapsed`` callback the
gateway registers. A connection that closes while a beat's refresh is on its way waits for
it (``refreshed``) before its entry is removed: otherwise the refresh could put the entry
back after the removal, and for that moment the user would count as online.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from . import extensions
from .per_loop import PerLoop
from .state import PRESENCE_HEARTBEAT, get_state

logger = logging.getLogger(__name__)


class Expiring(Protocol):
    """A connection that lives no longer than its access token."""

    async def token_expired(self) -> None:
        """Called when its token expired without an ``auth:refresh``."""


class ConnectionTimers:
    """The timers of one event loop's connections, keyed by connection id."""

    def __init__(self) -> None:
        self._presence: dict[str, int] = {}  # connection id -> user id
        self._users: Counter[int] = Counter()  # user id -> connections registered here
        self._heartbeat: asyncio.Task | None = None
        # The connections of the refresh on its way, and what is set once it is done.
        self._refreshing: tuple[set[str], asyncio.Event] | None = None
        self._lapsed: Callable[[list[int]], Awaitable[None]] | None = None
        self._expiring: dict[str, tuple[float, Expiring]] = {}  # id -> (deadline, conn)
        # (deadline, connection id); an entry whose deadline is no longer the connection's
        # (refreshed, closed) is skipped when it comes up, or dropped by ``_compact``.
        self._deadlines: list[tuple[float, str]] = []
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = 0.0
        self._closing: set[asyncio.Task] = set()

    # --- presence --------------------------------------------------------------------------

    def presence_add(
        self,
        user_id: int,
        connection_id: str,
        lapsed: Callable[[list[int]], Awaitable[None]] | None = None,
    ) -> None:
        """Keep this connection's presence entry alive while it is registered; ``lapsed`` is
        called with the users a sweep finds gone offline without a close."""
        if lapsed is not None:
            self._lapsed = lapsed
        if connection_id not in self._presence:
            self._users[user_id] += 1
        self._presence[connection_id] = user_id
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self.beat())

    async def beat(self) -> None:
        try:
            while self._presence:
                await asyncio.sleep(PRESENCE_HEARTBEAT)
                await self.refresh_presence()
                await self.sweep_presence()
                await run_periodic_tasks()
        finally:
            self._heartbeat = None

    async def sweep_presence(self) -> None:
        """Report the users whose last connection's entry expired to ``lapsed``."""
        try:
            lapsed = await get_state().presence_sweep()
            if lapsed and self._lapsed is not None:
                await self._lapsed(lapsed)
        except Exception:
            logger.warning("presence sweep failed", exc_info=True)

    async def refreshed(self, connection_id: str) -> None:
        """Return once no refresh on its way includes this connection's entry."""
        while self._refreshing is not None and connection_id in self._refreshing[0]:
            await self._refreshing[1].wait()

    async def refresh_presence(self) -> None:
        """One beat: refresh every registered connection's presence entry."""
        entries = [(user_id, conn) for conn, user_id in self._presence.items()]
        if not entries:
            return
        done = asyncio.Event()
        self._refreshing = ({conn for _, conn in entries}, done)
        try:
            await get_state().presence_refresh_many(entries)
            # A connection that closed while the refresh was on its way (its close waits
            # for this refresh before removing its entry, but a consumer may end without
            # that step): remove it again, or its user would look online for PRESENCE_TTL.
            gone = [(user_id, conn) for user_id, conn in entries if conn not in self._presence]
            if gone:
                await get_state().presence_remove_many(gone)
        except Exception:
            logger.warning("presence refresh failed", exc_info=True)
        finally:
            self._refreshing = None
            done.set()

    # --- token expiry ----------------------------------------------------------------------

    def expire_at(self, connection_id: str, connection: Expiring, expires: float | None) -> None:
        """Call ``connection.token_expired()`` at ``expires`` (epoch seconds), in place of
        any deadline it had; never, if ``expires`` is None."""
        self._expiring.pop(connection_id, None)
        if expires is not None:
            self._expiring[connection_id] = (expires, connection)
            heapq.heappush(self._deadlines, (expires, connection_id))
        self._compact()
        self._arm()

    def _arm(self) -> None:
        """Make sure the loop's one alarm rings by the earliest deadline still wanted (an
        alarm that rings early finds nothing due and is set again)."""
        while self._deadlines and not self._wanted(*self._deadlines[0]):
            heapq.heappop(self._deadlines)
        if not self._deadlines:
            return
        earliest = self._deadlines[0][0]
        if self._alarm is not None and self._alarm_at <= earliest:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm_at = earliest
        self._alarm = asyncio.get_running_loop().call_later(
            max(0.0, earliest - time.time()), self._ring
        )

    def _ring(self) -> None:
        self._alarm = None
        now = time.time()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, connection_id = heapq.heappop(self._deadlines)
            if self._wanted(deadline, connection_id):
                _, connection = self._expiring.pop(connection_id)
                task = asyncio.get_running_loop().create_task(connection.token_expired())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._arm()

    def _wanted(self, deadline: float, connection_id: str) -> bool:
        current = self._expiring.get(connection_id)
        return current is not None and current[0] == deadline

    def _compact(self) -> None:
        """Drop the deadlines of closed and refreshed connections once they outnumber the
        live ones, so a worker with churning connections and long-lived tokens does not
        keep one heap entry per connection it ever had."""
        if len(self._deadlines) > 2 * len(self._expiring) + 64:
            self._deadlines = [(d, conn) for conn, (d, _) in self._expiring.items()]
            heapq.heapify(self._deadlines)

    # --- both ------------------------------------------------------------------------------

    def forget(self, connection_id: str) -> None:
        """The connection is closing: no more refreshes, no expiry."""
        user_id = self._presence.pop(connection_id, None)
        if user_id is not None:
            self._users[user_id] -= 1
            if not self._users[user_id]:
                del self._users[user_id]
        if self._expiring.pop(connection_id, None) is not None:
            self._compact()

    def connected_here(self, user_id: int) -> bool:
        """Whether the user has a connection registered on this loop: online, whatever the
        shared presence says, so nothing needs queueing for them."""
        return user_id in self._users

    def __contains__(self, connection_id: str) -> bool:
        """Whether a connection still has a timer here."""
        return connection_id in self._presence or connection_id in self._expiring


async def run_periodic_tasks() -> None:
    """Await the tasks other apps run on every beat (``chat.extensions.register_periodic``),
    each on its own: one failing doesn't keep the others from running."""
    for task in list(extensions.periodic_tasks):
        try:
            await task()
        except Exception:
            logger.warning("periodic task %s failed", task, exc_info=True)


# The running event loop's timer service (tasks and timers are bound to their loop).
connection_timers = PerLoop(ConnectionTimers)
