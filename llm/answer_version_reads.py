"""Reading an answer's versions: ``GET /api/chat/messages/:id/versions``, members only.

Each version is a stream of the message (``llm.services.answer_versions``), read from its
row: the text it ended with, who asked for it and with which model, how it ended.
"""

from __future__ import annotations

from accounts.serializers import render_user
from chat.selectors import message_get_for_member
from chat.serializers import iso

from .models import Stream


def _version(stream: Stream, *, shown: int, shown_content: str) -> dict:
    content = stream.content
    if not content and stream.version == shown and stream.status in Stream.FINAL:
        # A first answer that ended before its row kept its text: the message has it.
        content = shown_content
    return {
        "version": stream.version,
        "streamId": str(stream.pk),
        "content": content,
        "model": stream.model,
        "agentId": str(stream.agent_id) if stream.agent_id else None,
        "requestedBy": render_user(stream.requested_by) if stream.requested_by else None,
        "status": stream.status,
        "finishReason": stream.finish_reason or None,
        "tokens": stream.tokens_generated,
        "citations": stream.citations or [],
        "startedAt": iso(stream.started_at),
        "completedAt": iso(stream.completed_at),
    }


def answer_versions(*, user, message_id) -> dict:
    """``{messageId, version, versions}``, oldest version first; ``version`` is the one the
    message shows. A deleted message, or one no stream wrote, has ``versions: []``."""
    message = message_get_for_member(user=user, message_id=message_id)
    streams = []
    if not message.is_deleted:
        streams = list(
            Stream.objects.filter(message_id=message.pk)
            .select_related("requested_by")
            .order_by("version")
        )
    shown = (message.metadata or {}).get("version") or (1 if streams else None)
    return {
        "messageId": str(message.pk),
        "version": shown,
        "versions": [
            _version(stream, shown=shown, shown_content=message.content) for stream in streams
        ],
    }
