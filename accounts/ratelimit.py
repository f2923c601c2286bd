"""Brute-force limits on the auth endpoints, with django-ratelimit's counters.

``AUTH_RATE`` sets the rate (``10/m``); ``off`` turns the limit off for load tests. A
refused request gets ``RATE_LIMITED`` with the seconds left in the window.

Every login door (``/api/auth/token``, ``/login/``, ``/admin/login/``, ``/api-auth/login/``)
counts in one group, per IP and per username: a password guesser gets ``AUTH_RATE`` tries at
an account in all, not that many at each door.
"""

from django.conf import settings
from django_ratelimit.core import get_usage

from chatproject.errors import DomainError

LOGIN_GROUP = "auth.login"
LOGIN_KEYS = ["ip", "accounts.ratelimit.username_key"]
REGISTER_GROUP = "auth.register"


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


def login_rate_check(request) -> None:
    """Count one login attempt, whichever door it came through; refuse if over the limit."""
    auth_rate_check(request, group=LOGIN_GROUP, keys=LOGIN_KEYS)


def register_rate_check(request) -> None:
    """Count one sign-up, through the REST door or the web page alike, per IP."""
    auth_rate_check(request, group=REGISTER_GROUP, keys=["ip"])


def username_key(group, request) -> str:
    """django-ratelimit key: the username in the body (a DRF request's parsed ``data``, or a
    login form's ``POST``), folded so case can't dodge the limit."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    username = data.get("username", "") if hasattr(data, "get") else ""
    return str(username).strip().lower()[:150]
