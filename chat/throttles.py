"""Per-user throttles of client events (CONTRACT section 3), counted in the shared state so a
user gets one budget across every worker, and across both doors: a REST write that has a
WebSocket twin (``POST /api/chat/messages`` is ``message:send``) spends the twin's budget
through ``EventThrottle``, so REST is no way around the WebSocket limit.

Each rule is a fixed window: ``limit`` events per ``window_ms``: ``WS_EVENT_LIMITS`` a
minute for the events named there (the contract's defaults), ``session:join`` counted per
session; every other event shares ``WS_THROTTLE_LIMIT`` per ``WS_THROTTLE_TTL``.
"""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from chatproject import metrics
from chatproject.errors import DomainError

from .state import get_state


@dataclass(frozen=True)
class Rule:
    limit: int
    window_ms: int = 60_000
    per_session: bool = False


# Counted per session rather than per user.
PER_SESSION = frozenset({"session:join"})


def rule_for(event: str) -> Rule:
    limit = settings.WS_EVENT_LIMITS.get(event)
    if limit is None:
        return Rule(settings.WS_THROTTLE_LIMIT, settings.WS_THROTTLE_TTL)
    return Rule(limit, per_session=event in PER_SESSION)


async def throttle_check(*, user_id: int, event: str, session_id=None) -> None:
    """Count one ``event`` for the user; RATE_LIMITED (with retryAfter) past the rule."""
    rule = rule_for(event)
    key = f"{event}:{user_id}"
    if rule.per_session and session_id is not None:
        key = f"{key}:{session_id}"
    retry_after = await get_state().throttle_hit(key, rule.limit, rule.window_ms)
    if retry_after is not None:
        metrics.WS_THROTTLED.labels(event).inc()
        raise DomainError(
            "RATE_LIMITED",
            f"Too many {event} events: at most {rule.limit} per {rule.window_ms // 1000} s.",
            retry_after=retry_after,
        )


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
