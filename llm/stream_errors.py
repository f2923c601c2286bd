"""Why an answer failed, as a code a client can act on.

Refusals before any text (``INVALID_MODEL``, ``LLM_UNAVAILABLE``) use the contract's
codes. Failures in the middle of an answer have codes of their own, so a client can tell a
model that broke off from one that was never reachable:

- ``STREAM_TIMEOUT``: Ollama sent nothing for longer than the read timeout;
- ``STREAM_INTERRUPTED``: the connection broke mid-answer;
- ``STREAM_INCOMPLETE``: the answer ended without Ollama's final (``done``) line;
- ``MODEL_ERROR``: Ollama reported an error (a mid-stream ``error`` line, or a 4xx);
- ``INTERNAL``: anything else (a bug: logged with its traceback).
"""

from __future__ import annotations

import httpx
import ollama

INVALID_MODEL = "INVALID_MODEL"
LLM_UNAVAILABLE = "LLM_UNAVAILABLE"
STREAM_TIMEOUT = "STREAM_TIMEOUT"
STREAM_INTERRUPTED = "STREAM_INTERRUPTED"
STREAM_INCOMPLETE = "STREAM_INCOMPLETE"
MODEL_ERROR = "MODEL_ERROR"
INTERNAL = "INTERNAL"


def classify(exc: BaseException, *, model: str) -> tuple[str, str]:
    """(code, message) for an exception raised while streaming from Ollama."""
    if isinstance(exc, ollama.ResponseError):
        status = exc.status_code
        if status == 404:
            return INVALID_MODEL, f"The model {model!r} is not available on the Ollama server."
        if status in (429, 502, 503, 504) or status >= 500:
            return LLM_UNAVAILABLE, "The language model is busy or unavailable; try again soon."
        return MODEL_ERROR, f"The model reported an error: {exc.error}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError):
        return LLM_UNAVAILABLE, "The language model server can't be reached."
    if isinstance(exc, httpx.TimeoutException):
        return STREAM_TIMEOUT, "The language model stopped answering."
    if isinstance(exc, httpx.TransportError):
        return STREAM_INTERRUPTED, "The connection to the language model broke off."
    return INTERNAL, "The answer failed."
