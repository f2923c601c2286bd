"""Per-user throttles of client events (CONTRACT section 3), counted in the shared state so a
user gets one budget across every worker, and across both doors: a REST write that has a
WebSocket twin (``POST /api/chat/messages`` is ``message:send``) spends the twin's budget
through ``EventThrottle``, so REST is no way around the WebSocket limit.

Each rule is a fixed window: ``limit`` events per ``window_ms``: ``WS_EVENT_LIMITS`` a
minute for the events named there (the contract's defaults); every other event shares
``WS_THROTTLE_LIMIT`` per ``WS_THROTTLE_TTL``.

``session:join`` is counted per session on one connection, in that connection's memory: a
reload or a reconnect is a new connection with a budget of its own, so a person coming back
to a room is never kept out of its live events by the joins of the connection they left.
What bounds a user reconnecting in a loop is the limit on new connections
(``connection_check``: ``WS_CONNECTION_LIMIT`` per ``WS_CONNECTION_WINDOW_MS`` per user,
counted in the shared state, so across workers).
"""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from chatproject import metrics
from chatproject.errors import DomainError

from .state import get_state
from .windows import FixedWindows


@dataclass(frozen=True)
class Rule:
    limit: int
    window_ms: int = 60_000
    # Counted per session on one connection, rather than per user across connections.
    per_connection: bool = False


PER_CONNECTION = frozenset({"session:join"})


def rule_for(event: str) -> Rule:
    limit = settings.WS_EVENT_LIMITS.get(event)
    if limit is None:
        return Rule(settings.WS_THROTTLE_LIMIT, settings.WS_THROTTLE_TTL)
    return Rule(limit, per_connection=event in PER_CONNECTION)


def _limited(what: str, limit: int, window_ms: int, retry_after: float) -> DomainError:
    return DomainError(
        "RATE_LIMITED",
        f"Too many {what}: at most {limit} per {window_ms // 1000} s.",
        retry_after=retry_after,
    )


async def throttle_check(
    *, user_id: int, event: str, session_id=None, connection: FixedWindows | None = None
) -> None:
    """Count one ``event`` for the user; RATE_LIMITED (with retryAfter) past the rule.

    ``connection`` holds the counts of the connection the event came on, for the rules
    counted per connection; a door without one (REST) counts those per user and session."""
    rule = rule_for(event)
    if rule.per_connection and connection is not None:
        retry_after = connection.hit(f"{event}:{session_id}", rule.limit, rule.window_ms)
    else:
        key = f"{event}:{user_id}"
        if rule.per_connection:
            key = f"{key}:{session_id}"
        retry_after = await get_state().throttle_hit(key, rule.limit, rule.window_ms)
    if retry_after is not None:
        metrics.WS_THROTTLED.labels(event).inc()
        raise _limited(f"{event} events", rule.limit, rule.window_ms, retry_after)


async def connection_check(*, user_id: int) -> None:
    """Count one new connection of the user, on any worker and any WebSocket door;
    RATE_LIMITED (with retryAfter) past ``WS_CONNECTION_LIMIT`` per window."""
    limit, window_ms = settings.WS_CONNECTION_LIMIT, settings.WS_CONNECTION_WINDOW_MS
    retry_after = await get_state().throttle_hit(f"connect:{user_id}", limit, window_ms)
    if retry_after is not None:
        metrics.WS_THROTTLED.labels("connect").inc()
        raise _limited("new connections", limit, window_ms, retry_after)


class EventThrottle(BaseThrottle):
    """DRF's throttle step for REST doors with a WebSocket twin: a view lists it in
    ``throttle_classes`` and names the event each method counts as (``throttle_events =
    {"POST": "message:send"}``); the request is counted by ``throttle_check``, in the same
    window as the twin's frames.

    A refusal is raised as the same RATE_LIMITED error the WebSocket door answers (429 with
    ``Retry-After``, ``retryAfter`` in the body), rather than DRF's ``Throttled``: one error,
    one sentence, whichever door. Views without ``throttle_events`` are not throttled here.
    """

    def allow_request(self, request, view) -> bool:
        event = getattr(view, "throttle_events", {}).get(request.method)
        if event is not None and request.user.is_authenticated:
            async_to_sync(throttle_check)(user_id=request.user.pk, event=event)
        return True
