"""Answering ``@assistant`` (or ``@<agent name>``) in a person's message.

Chat tells this app of people's new messages once they are stored (``chat.extensions``,
registered by ``LlmConfig.ready()``), from ``message:send`` and ``POST
/api/chat/messages`` alike; their authors were acked already. A message that mentions the
assistant starts a room stream answering it, as ``stream:request`` would have, but with no
new prompt: the mentioning message is the prompt (``Stream.user_message``), and the answer
goes in its thread if it is a reply. The same budget (the sender's ``stream:request``
throttle), slot limit (``MAX_CONCURRENT_STREAMS``), context, stop and resume apply; once
started the answer is a ``RoomStream`` like any other.

A stream that can't start is told to the sender alone (their ``user-<id>`` group) as a
``stream:error`` with no ``streamId`` and the mentioning message's id: the room sees no
answer, and the sender learns why.

Only people's messages come here: the assistant's answers, bots and webhooks never start
a stream, so answers can't loop.
"""

from __future__ import annotations

import logging
import uuid

from channels.db import database_sync_to_async

from accounts.serializers import render_user
from chat.events import broadcast_async, group_for_user
from chat.models import Message
from chat.selectors import session_brief_for_member
from chat.services.assistant import assistant_message_create
from chat.throttles import throttle_check
from chatproject.errors import DomainError

from .. import event_types
from ..context import context_messages
from ..mention_target import MentionTarget, mention_target
from ..selectors import agent_choices
from .assistant_access import assistant_start_check
from .stream_records import StreamPlan, answer_metadata, stream_row, stream_target
from .streams import plan_in_slot, room_start

logger = logging.getLogger(__name__)


def asks_maybe(message: Message) -> bool:
    """Whether a message may mention the assistant, told where it is stored: most don't
    have an ``@``, and cost nothing more."""
    return "@" in message.content


async def on_people_messages(messages: list[Message]) -> None:
    """Called when people's new messages that may ask (``asks_maybe``) are stored: answer
    each that mentions the assistant."""
    agents = await database_sync_to_async(agent_choices)()
    for message in messages:
        target = mention_target(message.content, agents)
        if target is not None:
            await mention_answer(prompt=message, target=target)


async def mention_answer(*, prompt: Message, target: MentionTarget) -> dict | None:
    """Start the answer to ``prompt``, a stored message of a person that mentions the
    assistant: ``{streamId, messageId, userMessageId}``, or None when it can't start (the
    sender is told why)."""
    user = prompt.author
    request = {"prompt": prompt, "target": target, "stream_id": uuid.uuid4()}
    try:
        assistant_start_check(user)
        await throttle_check(user_id=user.pk, event="stream:request")
        plan = await plan_in_slot(mention_stream_open, request)
    except DomainError as error:
        await _tell_sender(prompt, error)
        return None
    return await room_start(plan)


def mention_stream_open(*, prompt: Message, target: MentionTarget, stream_id) -> StreamPlan:
    """Plan the answer to a stored prompt and store it in one write: the empty assistant
    message (``message:new``, in the prompt's thread if any) and the ``Stream`` row naming
    the prompt. NOT_FOUND or FORBIDDEN if the sender left the session meanwhile."""
    user = prompt.author
    session = session_brief_for_member(user=user, session_id=prompt.session_id)
    stream_on = stream_target(
        session_id=session.id, session_agent_id=session.agent_id, agent_id=target.agent_id
    )
    messages = context_messages(
        session_id=session.id,
        system_prompt=stream_on.system_prompt,
        parent_id=prompt.parent_id,
    )
    plan = StreamPlan(
        stream_id=stream_id,
        session_id=session.id,
        message_id=uuid.uuid4(),
        user_message_id=prompt.pk,
        agent_id=stream_on.agent_id,
        config=stream_on.config,
        tool_names=stream_on.tool_names,
        messages=messages,
        user=user,
        requested_by=render_user(user),
        prompt=prompt.content,
        parent_id=prompt.parent_id,
    )
    assistant_message_create(
        session_id=plan.session_id,
        agent_id=plan.agent_id,
        parent_id=plan.parent_id,
        metadata=answer_metadata(plan),
        message_id=plan.message_id,
        also=[stream_row(plan)],
    )
    return plan


async def _tell_sender(prompt: Message, error: DomainError) -> None:
    logger.info("@assistant in message %s not answered: %s", prompt.pk, error.code)
    await broadcast_async(
        group_for_user(prompt.author.pk),
        {
            "event": event_types.STREAM_ERROR,
            "data": event_types.stream_refused(
                session_id=prompt.session_id, message_id=prompt.pk, error=error.as_data()
            ),
        },
    )
