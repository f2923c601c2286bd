"""The OpenAPI schema's view of every operation (drf-spectacular's ``AutoSchema``), plus the
refusals every REST door can answer with, so the schema documents them all.

Every refusal has one shape, ``{code, message, details?, retryAfter?}``
(``chatproject.errors``); which statuses an operation may answer follows from what it is:

- any operation: 400 invalid input, 401 no or bad credentials (a wrong password or refresh
  token too), 403 not allowed, 404 no such object (in the path or named in the body), 415 a
  content type that is not accepted, 429 throttled, 503 a backend (database, Redis,
  Ollama) unavailable right now;
- one that takes a file: 413 too large.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """A refusal: a contract code, a sentence, per-field details, seconds to wait."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(required=False)
    retryAfter = serializers.IntegerField(required=False, min_value=1)


ERRORS = {
    "400": "Invalid input (VALIDATION_ERROR, with per-field details).",
    "401": "No or bad credentials (UNAUTHORIZED).",
    "403": "Not allowed: not a member, not the author, not staff (FORBIDDEN).",
    "404": "No such object (NOT_FOUND).",
    "413": "The file is larger than ATTACHMENT_MAX_BYTES.",
    "415": "A file type, or a request content type, that is not accepted.",
    "429": "Throttled (RATE_LIMITED, STREAM_LIMIT): retry after Retry-After seconds.",
    "503": "A backend (database, Redis, Ollama) is unavailable right now: retry shortly.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in self._error_statuses():
            if status not in responses:
                error = OpenApiResponse(ErrorSerializer, description=ERRORS[status])
                responses[status] = self._get_response_for_code(error, status)
        return responses

    def _error_statuses(self) -> list[str]:
        statuses = ["400", "401", "403", "404", "415", "429", "503"]
        if self.method in ("POST", "PUT", "PATCH") and "attachments" in self.path:
            statuses.append("413")
        return sorted(statuses)
