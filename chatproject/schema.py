"""The refusals every REST door can answer with, added to each operation of the OpenAPI
schema by a drf-spectacular postprocessing hook (``POSTPROCESSING_HOOKS``), so the schema
documents them all.

Every refusal has one shape, ``{code, message, details?, retryAfter?}``
(``chatproject.errors``); which statuses an operation may answer follows from what it is:

- any operation: 400 invalid input, 401 no or bad credentials (a wrong password or refresh
  token too), 403 not allowed, 404 no such object (in the path or named in the body), 415 a
  content type that is not accepted, 429 throttled, 503 a backend (database, Redis,
  Ollama) unavailable right now;
- one that takes a file: 413 too large.

A response an operation declares itself (``extend_schema``) is kept as it is.
"""

from __future__ import annotations

ERROR_COMPONENT = "Error"

ERROR_SCHEMA = {
    "type": "object",
    "description": "A refusal: a contract code, a sentence, per-field details, seconds to wait.",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "details": {},
        "retryAfter": {"type": "integer", "minimum": 1},
    },
    "required": ["code", "message"],
}

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

UPLOAD_METHODS = frozenset({"post", "put", "patch"})
OPERATIONS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def error_statuses(*, path: str, method: str) -> list[str]:
    """The refusal statuses of one operation (``method`` lower case, as in the schema)."""
    statuses = ["400", "401", "403", "404", "415", "429", "503"]
    if method in UPLOAD_METHODS and "attachments" in path:
        statuses.append("413")
    return sorted(statuses)


def add_error_responses(result, generator, request, public):
    """Called by drf-spectacular with the generated schema: adds the ``Error`` component and,
    to each operation, every refusal it may answer that it does not declare itself."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in OPERATIONS:
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path=path, method=method):
                responses.setdefault(
                    status,
                    {
                        "description": ERRORS[status],
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
