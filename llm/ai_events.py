"""The frames ``/ws/ai/`` sends besides ``ack`` and ``error`` replies, one function each;
tests compare frames to them.

``chat:start`` (seed 001): ``chat:conversation`` when a conversation is made,
``chat:user-message``, ``chat:message`` per chunk, then ``chat:end``, ``chat:stopped`` or
``chat:error``. ``prompt`` (seed 000): ``ai_chunk`` per chunk (the delta as a bare string),
then ``ai_complete``, or ``error`` with an HTTP-like ``status_code``.
"""

from __future__ import annotations

from typing import Any

from chatproject.errors import STATUS_BY_CODE

CHAT_CONVERSATION = "chat:conversation"
CHAT_USER_MESSAGE = "chat:user-message"
CHAT_MESSAGE = "chat:message"
CHAT_END = "chat:end"
CHAT_ERROR = "chat:error"
CHAT_STOPPED = "chat:stopped"
AI_CHUNK = "ai_chunk"
AI_COMPLETE = "ai_complete"
ERROR = "error"


def chat_conversation(*, conversation_id) -> dict[str, Any]:
    return {"conversationId": str(conversation_id)}


def chat_user_message(*, message_id, content: str) -> dict[str, Any]:
    return {"messageId": str(message_id), "content": content}


def chat_message(*, content: str) -> dict[str, Any]:
    """``content`` is the delta."""
    return {"content": content, "isComplete": False}


def chat_end(
    *,
    message_id,
    conversation_id,
    total_tokens: int,
    prompt_tokens: int,
    model: str,
    finish_reason: str,
) -> dict[str, Any]:
    """``totalTokens`` counts the tokens generated, as the stream metrics do."""
    return {
        "messageId": str(message_id),
        "conversationId": str(conversation_id),
        "totalTokens": total_tokens,
        "promptTokens": prompt_tokens,
        "model": model,
        "finishReason": finish_reason,
    }


def chat_error(*, message: str, code: str) -> dict[str, Any]:
    return {"message": message, "code": code}


def chat_stopped(*, message_id, conversation_id) -> dict[str, Any]:
    return {"messageId": str(message_id), "conversationId": str(conversation_id)}


def ai_chunk(*, delta: str) -> str:
    return delta


def ai_complete(*, thread, message_id, finish_reason: str) -> dict[str, Any]:
    return {"thread": str(thread), "messageId": str(message_id), "finishReason": finish_reason}


def status_code(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def prompt_error(*, message: str, code: str) -> dict[str, Any]:
    """Seed 000's ``{message, status_code}``, with the contract's code beside it."""
    return {"message": message, "status_code": status_code(code), "code": code}
