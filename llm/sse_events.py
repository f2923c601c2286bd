"""The payload of every event the two SSE doors send, one function each; tests compare the
events to them.

``POST /api/stream`` (seed 003): ``message-start``, ``message-chunk`` (the delta),
``message-complete``, ``error``. Attaching to a room stream
(``GET /api/chat/streams/:id/events``): ``chunk`` events, then one of ``complete``,
``stopped`` or ``error``, whose data are the room's own ``stream:complete``,
``stream:stopped`` and ``stream:error`` payloads (``llm.event_types``).
"""

from __future__ import annotations

from typing import Any

MESSAGE_START = "message-start"
MESSAGE_CHUNK = "message-chunk"
MESSAGE_COMPLETE = "message-complete"
ERROR = "error"

CHUNK = "chunk"
COMPLETE = "complete"
STOPPED = "stopped"


def message_start(*, message_id) -> dict[str, Any]:
    return {"messageId": str(message_id)}


def message_chunk(*, message_id, content: str) -> dict[str, Any]:
    """``content`` is the delta: the text this event adds."""
    return {"messageId": str(message_id), "content": content, "done": False}


def message_complete(
    *,
    message_id,
    full_content: str,
    model: str,
    finish_reason: str,
    tokens: int,
    prompt_tokens: int,
) -> dict[str, Any]:
    return {
        "messageId": str(message_id),
        "fullContent": full_content,
        "model": model,
        "finishReason": finish_reason,
        "tokens": tokens,
        "promptTokens": prompt_tokens,
    }


def error(*, message: str, code: str) -> dict[str, Any]:
    """Seed 003's ``{message}``, with the contract's code beside it."""
    return {"message": message, "code": code}


def chunk(*, stream_id, message_id, index: int, delta: str) -> dict[str, Any]:
    """Text of a room stream: ``index`` is the last chunk it includes (the event's ``id``),
    ``delta`` all the text after what the client had."""
    return {
        "streamId": str(stream_id),
        "messageId": str(message_id),
        "index": index,
        "delta": delta,
    }
