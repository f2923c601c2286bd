"""The one application error type, and its mapping to REST responses.

A service raises ``DomainError`` with a contract code; the DRF exception handler below and
the WebSocket consumer are the only places that turn it into an error envelope. DRF's own
exceptions are mapped to the same ``{code, message, details?}`` shape so a client sees one
error format whichever layer refused the request.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "VALIDATION_ERROR": 400,
    "BAD_FRAME": 400,
    "UNKNOWN_EVENT": 400,
    "RATE_LIMITED": 429,
    "CONTENT_REJECTED": 400,
    "INVALID_MODEL": 400,
    "LLM_UNAVAILABLE": 503,
    "STREAM_LIMIT": 429,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INTERNAL": 500,
}


class DomainError(Exception):
    """A refusal a client can act on: a contract code, a sentence, and optional details."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Any = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.status = status or STATUS_BY_CODE.get(code, 400)

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            data["retryAfter"] = max(1, math.ceil(self.retry_after))
        if self.details is not None:
            data["details"] = self.details
        return data


def not_found(what: str) -> DomainError:
    return DomainError("NOT_FOUND", f"{what} not found.")


def forbidden(message: str) -> DomainError:
    return DomainError("FORBIDDEN", message)


def validation_error(message: str, details: Any = None) -> DomainError:
    return DomainError("VALIDATION_ERROR", message, details=details)


def outage_error(exc: BaseException) -> DomainError | None:
    """The refusal for a backend that can't be reached right now (the database or Redis
    restarting), or None for any other failure. A client should retry after ``retryAfter``:
    nothing was half-done (a write either committed or rolled back)."""
    import redis
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        what = "The database"
    elif isinstance(exc, redis.RedisError):
        what = "The real-time service (Redis)"
    else:
        return None
    return DomainError(
        "INTERNAL", f"{what} is unavailable right now: retry in a moment.",
        retry_after=1, status=503,
    )  # fmt: skip


def _sentence(detail, fallback: str) -> str:
    """The sentence a DRF error detail carries. A detail may be a string, or a list or dict
    of them (simplejwt's ``InvalidToken`` is ``{"detail": ..., "messages": [...]}``): its
    ``detail``, else its first item, never the structure's repr."""
    while isinstance(detail, dict | list) and detail:
        detail = (
            detail.get("detail", next(iter(detail.values())))
            if isinstance(detail, dict)
            else detail[0]
        )
    text = str(detail).strip() if isinstance(detail, str) else ""
    text = text or fallback
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _extra(detail) -> Any:
    """What a structured detail says besides its sentence, for ``details``; None if nothing."""
    if isinstance(detail, dict):
        return {
            key: value for key, value in detail.items() if key not in ("detail", "code")
        } or None
    if isinstance(detail, list) and len(detail) > 1:
        return detail
    return None


def _from_drf(exc: drf.APIException) -> DomainError:
    if isinstance(exc, drf.ValidationError):
        return validation_error("The request is invalid: see details.", exc.detail)
    message = _sentence(exc.detail, str(exc.default_detail))
    details = _extra(exc.detail)
    if isinstance(exc, drf.ParseError):
        return validation_error(f"The request body could not be parsed: {message}", details)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return DomainError("UNAUTHORIZED", message, details=details, status=401)
    if isinstance(exc, drf.PermissionDenied):
        return DomainError("FORBIDDEN", message, details=details)
    if isinstance(exc, drf.NotFound):
        return DomainError("NOT_FOUND", message, details=details)
    if isinstance(exc, drf.Throttled):
        return DomainError("RATE_LIMITED", "Too many requests.", retry_after=exc.wait or 1)
    if isinstance(exc, drf.UnsupportedMediaType):
        return DomainError("UNSUPPORTED_MEDIA_TYPE", message, details=details)
    if isinstance(exc, drf.MethodNotAllowed):
        return DomainError("VALIDATION_ERROR", message, details=details, status=405)
    return DomainError("VALIDATION_ERROR", message, details=details, status=exc.status_code)


def error_response(error: DomainError) -> Response:
    response = Response(error.as_data(), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response


def error_json(error: DomainError) -> JsonResponse:
    """A refusal in the API's one error shape ``{code, message, details?}``."""
    response = JsonResponse(error.as_data(), status=error.status)
    if error.status == 401:
        # As DRF answers a 401: say which scheme to use.
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's exception handler: every refusal leaves as ``{code, message, details?}``."""
    if isinstance(exc, DomainError):
        return error_response(exc)
    if isinstance(exc, Http404):
        return error_response(DomainError("NOT_FOUND", "Not found."))
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(forbidden("You do not have permission to do this."))
    if isinstance(exc, drf.APIException):
        response = drf_exception_handler(exc, context)
        error = _from_drf(exc)
        final = error_response(error)
        if response is not None and "WWW-Authenticate" in response:
            final["WWW-Authenticate"] = response["WWW-Authenticate"]
        return final
    if (outage := outage_error(exc)) is not None:
        logger.warning("%s (%s: %s)", outage.message, type(exc).__name__, exc)
        return error_response(outage)
    return None


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any ``/api/`` path no route matched: the JSON error shape, not Django's HTML page.
    CSRF-exempt (nothing is changed here), or an unknown path POSTed to would get the CSRF
    middleware's HTML 403 instead of this 404."""
    return error_json(DomainError("NOT_FOUND", f"No API endpoint at {request.path}."))
