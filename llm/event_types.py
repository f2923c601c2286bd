"""The payload of every ``stream:*`` event a room receives (CONTRACT section 3), one
function each. The room stream builds its frames only through these, and tests compare
frames to them. None of them is durable: the answer itself reaches the session's log as the
assistant message's ``message:new`` and, when it ends, ``message:edited``.
"""

from __future__ import annotations

from typing import Any

STREAM_START = "stream:start"
STREAM_CHUNK = "stream:chunk"
STREAM_TOOL = "stream:tool"
STREAM_COMPLETE = "stream:complete"
STREAM_ERROR = "stream:error"
STREAM_STOPPED = "stream:stopped"


def _ids(*, stream_id, session_id, message_id) -> dict[str, str]:
    return {"streamId": str(stream_id), "sessionId": str(session_id), "messageId": str(message_id)}


def stream_start(
    *,
    stream_id,
    session_id,
    message_id,
    agent_id,
    model: str,
    requested_by: dict,
    version: int = 1,
) -> dict[str, Any]:
    """``version``: which version of the message's answer this is (1 for a first answer; a
    regenerate streams the next one into the same message)."""
    return {
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "agentId": str(agent_id) if agent_id else None,
        "model": model,
        "requestedBy": requested_by,
        "version": version,
    }


def chunk_id(*, stream_id, index: int) -> str:
    return f"{stream_id}:{index}"


def stream_chunk(
    *,
    stream_id,
    session_id,
    message_id,
    index: int,
    delta: str,
    tokens: int,
    is_complete: bool,
    content: str | None,
) -> dict[str, Any]:
    """``content`` (the whole answer) is present on the last chunk only."""
    data = {
        "id": chunk_id(stream_id=stream_id, index=index),
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "index": index,
        "delta": delta,
        "tokens": tokens,
        "isComplete": is_complete,
    }
    if is_complete:
        data["content"] = content
    return data


def stream_tool(*, stream_id, session_id, message_id, name: str, args: dict, result) -> dict:
    return {
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "name": name,
        "args": args,
        "result": result,
    }


def stream_complete(
    *,
    stream_id,
    session_id,
    message_id,
    content: str,
    tokens: int,
    prompt_tokens: int,
    finish_reason: str,
    model: str,
    duration_ms: int,
) -> dict[str, Any]:
    return {
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "content": content,
        "tokens": tokens,
        "promptTokens": prompt_tokens,
        "finishReason": finish_reason,
        "model": model,
        "durationMs": duration_ms,
    }


def stream_error(*, stream_id, session_id, message_id, code: str, message: str) -> dict:
    return {
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "code": code,
        "message": message,
    }


def stream_stopped(
    *, stream_id, session_id, message_id, content: str, tokens: int, stopped_by: dict | None
) -> dict[str, Any]:
    return {
        **_ids(stream_id=stream_id, session_id=session_id, message_id=message_id),
        "content": content,
        "tokens": tokens,
        "stoppedBy": stopped_by,
    }


def active_stream(
    *,
    stream_id,
    message_id,
    content: str,
    index: int,
    tokens: int,
    model: str,
    requested_by: dict | None,
) -> dict:
    """One entry of ``session:join``'s ``activeStreams``: ``index`` is the last chunk's
    (-1 before the first), so the client continues from ``index + 1``; ``model`` and
    ``requestedBy`` as ``stream:start`` said them, so a joiner shows what the room shows."""
    return {
        "streamId": str(stream_id),
        "messageId": str(message_id),
        "content": content,
        "index": index,
        "tokens": tokens,
        "model": model,
        "requestedBy": requested_by,
    }


def stream_refused(*, session_id, message_id, error: dict) -> dict[str, Any]:
    """A ``stream:error`` for an answer that never started (an ``@assistant`` refused by the
    throttle or the slot limit): no ``streamId``; ``messageId`` is the message that asked;
    ``error`` is the refusal's ``{code, message, retryAfter?}``."""
    return {"streamId": None, "sessionId": str(session_id), "messageId": str(message_id), **error}
