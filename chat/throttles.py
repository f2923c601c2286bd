"""Per-user WebSocket throttles (CONTRACT section 3), counted in the shared state so a user
gets one budget across every worker.

Each rule is a fixed window: ``limit`` events per ``window_ms``. ``session:join`` is counted
per session; events with no rule of their own share ``WS_THROTTLE_LIMIT`` per
``WS_THROTTLE_TTL``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from chatproject import metrics
from chatproject.errors import DomainError

from .state import get_state


@dataclass(frozen=True)
class Rule:
    limit: int
    window_ms: int = 60_000
    per_session: bool = False


RULES = {
    "session:join": Rule(5, per_session=True),
    "message:send": Rule(30),
    "message:edit": Rule(20),
    "typing:start": Rule(100),
    "stream:request": Rule(10),
}


def rule_for(event: str) -> Rule:
    return RULES.get(event) or Rule(settings.WS_THROTTLE_LIMIT, settings.WS_THROTTLE_TTL)


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
