"""Brute-force limits on the auth endpoints, with django-ratelimit's counters.

``AUTH_RATE`` sets the rate (``10/m``); ``off`` turns the limit off for load tests. A
refused request gets ``RATE_LIMITED`` with the seconds left in the window.
"""

from django.conf import settings
from django_ratelimit.core import get_usage

from chatproject.errors import DomainError


def auth_rate_check(request, *, group: str, keys: list[str]) -> None:
    """Count one attempt under each key; refuse if any key is over ``AUTH_RATE``."""
    rate = settings.AUTH_RATE
    if rate == "off":
        return
    for key in keys:
        usage = get_usage(request, group=group, key=key, rate=rate, method=["POST"], increment=True)
        if usage and usage["should_limit"]:
            raise DomainError(
                "RATE_LIMITED",
                "Too many attempts: wait before trying again.",
                retry_after=usage["time_left"],
            )


def username_key(group, request) -> str:
    """django-ratelimit key: the username in the body, folded so case can't dodge the limit."""
    data = getattr(request, "data", None) or {}
    username = data.get("username", "") if hasattr(data, "get") else ""
    return str(username).strip().lower()[:150]
