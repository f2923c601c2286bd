"""Who is calling an async (non-DRF) view: the same rules as the REST doors.

DRF's views are sync, so the SSE views authenticate themselves, as DRF would: an access JWT
in ``Authorization: Bearer`` (simplejwt), a bot token in ``Authorization: Token`` (knox,
``accounts.bot_auth``), else the web app's session cookie, which needs the
CSRF token on unsafe methods (a cross-site form could otherwise spend the user's cookie).
The views are ``csrf_exempt`` so that Django's middleware does not refuse token clients,
which send no cookie and need no CSRF check.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from rest_framework import exceptions
from rest_framework.authentication import CSRFCheck
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.bot_auth import BotTokenAuthentication
from chatproject.errors import DomainError


def _token_user(request):
    """The token's user, None without a Bearer or Token header; UNAUTHORIZED for a bad
    token or an unknown or inactive user."""
    try:
        found = JWTAuthentication().authenticate(request)
        if found is None:
            found = BotTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        detail = exc.detail
        message = detail.get("detail", str(detail)) if isinstance(detail, dict) else str(detail)
        raise DomainError("UNAUTHORIZED", f"The token can't be used: {message}") from exc
    return None if found is None else found[0]


def _enforce_csrf(request) -> None:
    def no_response(request):
        return None

    check = CSRFCheck(no_response)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise DomainError(
            "FORBIDDEN",
            f"CSRF check failed ({reason}): send the X-CSRFToken header with the cookie.",
        )


async def request_user(request):
    """The authenticated, active user of ``request``; UNAUTHORIZED without credentials."""
    user = await database_sync_to_async(_token_user)(request)
    if user is not None:
        return user
    user = await request.auser()
    if not getattr(user, "is_authenticated", False):
        raise DomainError(
            "UNAUTHORIZED",
            "Authenticate with an access token (Authorization: Bearer) or a session.",
        )
    if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        _enforce_csrf(request)
    return user
