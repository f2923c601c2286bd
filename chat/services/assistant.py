"""The assistant's messages in a room: created empty when an answer starts, finished once
when it ends.

The LLM app calls these (``chat`` never imports it): the message takes the session's next
seq and a durable ``message:new`` like any other; when the answer ends its content, tokens
and outcome are saved in one write and recorded as a durable ``message:edited`` carrying the
whole message, so a client replaying by ``lastSeq`` gets the final answer. It is not marked
as edited: nobody changed what was said.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import models, transaction
from django.utils import timezone

from .. import event_types
from ..events import event_record
from ..models import Message
from ..permissions import sender_refusal
from ..selectors import message_get
from ..serializers import render_message
from .messages import message_prepare, messages_store


def _assistant_message(*, session_id, agent_id, parent_id, metadata, message_id=None) -> Message:
    return Message(
        **({"id": message_id} if message_id is not None else {}),
        session_id=session_id,
        author=None,
        agent_id=agent_id,
        role=Message.Role.ASSISTANT,
        content="",
        metadata=metadata or {},
        parent_id=parent_id,
    )


def assistant_message_create(
    *,
    session_id,
    agent_id=None,
    parent_id=None,
    metadata: dict | None = None,
    message_id=None,
    also: Sequence[models.Model] = (),
) -> Message:
    """An empty assistant message (no author) in the session, or in the thread under
    ``parent_id`` (a thread root), broadcast as ``message:new``; ``message_id`` names it up
    front, and ``also``'s rows are stored in the same write (``messages_store``)."""
    message = _assistant_message(
        session_id=session_id,
        agent_id=agent_id,
        parent_id=parent_id,
        metadata=metadata,
        message_id=message_id,
    )
    messages_store([message], also=also)
    return message


def assistant_exchange_open(
    *,
    author,
    session_id,
    prompt: str,
    parent_id=None,
    agent_id=None,
    metadata: dict | None = None,
    prompt_id=None,
    answer_id=None,
    also: Sequence[models.Model] = (),
) -> tuple[Message, Message]:
    """A member's prompt and the empty assistant message that will answer it, stored
    together (a room stream's request): ``message_send`` then ``assistant_message_create``,
    with the same checks, seqs and ``message:new`` events, in one write (``messages_store``)
    with ``also``'s rows. ``prompt_id`` and ``answer_id`` name them up front."""
    question = message_prepare(
        author=author,
        session_id=session_id,
        content=prompt,
        parent_id=parent_id,
        message_id=prompt_id,
    )
    answer = _assistant_message(
        session_id=session_id,
        agent_id=agent_id,
        parent_id=question.parent_id,
        metadata=metadata,
        message_id=answer_id,
    )
    if not messages_store([question, answer], sender=author, also=also):
        raise sender_refusal(user=author, session_id=session_id)
    return question, answer


def assistant_message_finish(
    *, message_id, content: str, tokens: int | None, metadata: dict, replace: bool = False
) -> Message:
    """Save the answer's final text, token count and ``metadata`` (merged into the
    message's, or instead of it with ``replace``: a new version of an answer drops what the
    earlier one's outcome said), and broadcast the whole message as ``message:edited``."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message_id)
        Message.objects.filter(pk=locked.pk).update(
            content=content,
            tokens=tokens,
            metadata=metadata if replace else {**(locked.metadata or {}), **metadata},
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
