"""What the plain async views of the LLM app (``llm.sse``, ``llm.api_versions``) share with
DRF's doors: a JSON body validated by a serializer, refused in the API's one error shape,
and a 405 naming the allowed method. They are not DRF views (a DRF view is sync and would
hold a thread while a stream runs), so these stand in for its parser and dispatch."""

from __future__ import annotations

import orjson
from django.http import JsonResponse
from rest_framework import serializers

from chatproject.errors import DomainError, error_json, validation_error
from chatproject.json_depth import TOO_DEEP_MESSAGE, nested_too_deep


def method_not_allowed(allowed: str) -> JsonResponse:
    response = error_json(
        DomainError("VALIDATION_ERROR", f"Use {allowed} on this endpoint.", status=405)
    )
    response["Allow"] = allowed
    return response


def json_body(
    request, serializer_class: type[serializers.Serializer], *, empty_is_object: bool = False
) -> dict:
    """The request's JSON object as ``serializer_class`` validates it. An empty body is an
    empty object where every field is optional (``empty_is_object``), else refused."""
    try:
        body = orjson.loads(request.body or (b"{}" if empty_is_object else b"null"))
    except orjson.JSONDecodeError as exc:
        raise validation_error("The request body must be JSON.") from exc
    if not isinstance(body, dict):
        raise validation_error("The request body must be a JSON object.")
    if nested_too_deep(body):
        raise validation_error(TOO_DEEP_MESSAGE)
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise validation_error("The request is invalid: see details.", serializer.errors)
    return serializer.validated_data
