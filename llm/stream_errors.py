"""Why an answer failed, as one of the contract's codes and a sentence saying which kind.

The contract's list of codes is fixed, so every failure maps onto it:

- ``INVALID_MODEL``: Ollama does not have the model (404);
- ``LLM_UNAVAILABLE``: Ollama can't be reached, is busy (503), sent nothing for longer than
  the read timeout, broke the connection mid-answer, ended the answer without its final
  (``done``) line, or reported an error: the message tells which;
- ``INTERNAL``: anything else (a bug: logged with its traceback).
"""

from __future__ import annotations

import httpx
import ollama

INVALID_MODEL = "INVALID_MODEL"
LLM_UNAVAILABLE = "LLM_UNAVAILABLE"
INTERNAL = "INTERNAL"


def classify(exc: BaseException, *, model: str) -> tuple[str, str]:
    """(code, message) for an exception raised while streaming from Ollama."""
    if isinstance(exc, ollama.ResponseError):
        status = exc.status_code
        if status == 404:
            return INVALID_MODEL, f"The model {model!r} is not available on the Ollama server."
        if status in (429, 502, 503, 504) or status >= 500:
            return LLM_UNAVAILABLE, "The language model is busy or unavailable; try again soon."
        return LLM_UNAVAILABLE, f"The model reported an error: {exc.error}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError):
        return LLM_UNAVAILABLE, "The language model server can't be reached."
    if isinstance(exc, httpx.TimeoutException):
        return LLM_UNAVAILABLE, "The language model stopped answering (read timeout)."
    if isinstance(exc, httpx.TransportError):
        return LLM_UNAVAILABLE, "The connection to the language model broke off mid-answer."
    return INTERNAL, "The answer failed."
