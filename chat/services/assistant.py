"""The assistant's messages in a room: created empty when an answer starts, finished once
when it ends.

The LLM app calls these (``chat`` never imports it): the message takes the session's next
seq and a durable ``message:new`` like any other; when the answer ends its content, tokens
and outcome are saved in one write and recorded as a durable ``message:edited`` carrying the
whole message, so a client replaying by ``lastSeq`` gets the final answer. It is not marked
as edited: nobody changed what was said.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import event_types
from ..events import event_append, event_record, seq_allocate
from ..models import Message
from ..selectors import message_get
from ..serializers import render_message


def assistant_message_create(
    *, session_id, agent_id=None, parent_id=None, metadata: dict | None = None, message_id=None
) -> Message:
    """An empty assistant message (no author) in the session, or in the thread under
    ``parent_id`` (a thread root), broadcast as ``message:new``; ``message_id`` names it up
    front."""
    extra = {"id": message_id} if message_id is not None else {}
    # Nothing recovers from a failure here: inside a caller's transaction it rolls back the
    # whole, with no savepoint's two round trips.
    with transaction.atomic(savepoint=False):
        allocated = seq_allocate(
            session_id=session_id, message_at=timezone.now(), top_level=parent_id is None
        )
        message = Message.objects.create(
            **extra,
            session_id=session_id,
            seq=allocated.seq,
            author=None,
            agent_id=agent_id,
            role=Message.Role.ASSISTANT,
            content="",
            metadata=metadata or {},
            parent_id=parent_id,
        )
        if parent_id is not None:
            Message.objects.filter(pk=parent_id).update(reply_count=F("reply_count") + 1)
        # Just created, so nothing to read back: it has no author, reactions or attachments.
        message.reaction_list = []
        message.attachment_list = []
        event_append(
            session_id=session_id,
            allocated=allocated,
            event=event_types.MESSAGE_NEW,
            data=event_types.message_new(render_message(message)),
            message_id=message.pk,
        )
    return message


def assistant_message_finish(
    *, message_id, content: str, tokens: int | None, metadata: dict
) -> Message:
    """Save the answer's final text, token count and ``metadata`` (merged into the
    message's), and broadcast the whole message as ``message:edited``."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message_id)
        Message.objects.filter(pk=locked.pk).update(
            content=content,
            tokens=tokens,
            metadata={**(locked.metadata or {}), **metadata},
            updated_at=timezone.now(),
        )
        message = message_get(locked.pk)
        event_record(
            session_id=message.session_id,
            event=event_types.MESSAGE_EDITED,
            data=event_types.message_edited(render_message(message)),
            message_id=message.pk,
        )
    return message
