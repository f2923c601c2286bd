"""Conversations of ``/ws/ai/``: a conversation is a chat session whose only member is its
one human, talking with the assistant (seeds 000 and 001). It is an ordinary session, so it
is listed, read and deleted through the REST doors like any other, and its answers are room
streams (status, metrics, attach) like any other."""

from __future__ import annotations

from chat.models import ChatSession
from chat.services.sessions import session_create, session_delete

TITLE_LENGTH = 60


def conversation_title(first_message: str) -> str:
    """The first line of the first message, cut to ``TITLE_LENGTH`` characters."""
    lines = first_message.strip().splitlines()
    line = " ".join(lines[0].split()) if lines else ""
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rstrip() + "…"
    return line or "Conversation"


def conversation_create(*, user, first_message: str) -> ChatSession:
    return session_create(creator=user, title=conversation_title(first_message))


def conversation_discard(*, user, conversation_id) -> None:
    """Delete a conversation made for an answer that could not start."""
    session_delete(user=user, session_id=conversation_id)
