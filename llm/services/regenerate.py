"""Regenerate an answer, and edit a prompt and resend it: a new version of the answer
streamed into the same message, for everyone in the room.

``answer_regenerate`` is ``stream_request``'s sequence for an answer that exists: take a
slot, check and store the new version in one transaction (its ``Stream`` row, numbered
after the others, and the message's ``versions`` as a durable ``message:edited``), then run
it as a ``RoomStream``. The model sees what it saw the first time: the prompt and what came
before it (the thread, if the prompt is in one), never the answer being regenerated nor what
was said after the prompt. While a version of the message is being written another is
refused (STREAM_LIMIT): two streams writing one bubble would interleave.

``prompt_resend`` edits the prompt through chat's ``message_edit`` (its edit history kept)
and regenerates its latest answer from the edited text, both in one transaction: a resend
that can't start leaves the prompt as it was.
"""

from __future__ import annotations

import dataclasses
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.serializers import render_user
from chat.models import ChatSession, Message
from chat.selectors import message_get_for_member
from chat.services.assistant import assistant_message_finish
from chat.services.messages import message_edit
from chatproject.errors import DomainError, forbidden, validation_error

from ..context import context_messages
from ..models import Stream
from .answer_versions import answer_version_start
from .assistant_access import assistant_start_check
from .stream_records import StreamPlan, stream_row, stream_target
from .stream_sweeper import RUNNING, stream_sweep
from .streams import plan_in_slot, room_start, runs_to_its_end

STILL_WRITING = "This answer is still being written: stop it first."
NOT_AN_ANSWER = "Only an assistant answer to a prompt can be regenerated."


def _still_writing() -> DomainError:
    return DomainError("STREAM_LIMIT", STILL_WRITING)


def _first_stream(answer: Message) -> Stream:
    """The stream that first answered ``answer``'s prompt: VALIDATION_ERROR for a message
    that is no assistant answer to a prompt (a person's message, a deleted one, one saved by
    another door)."""
    first = None
    if answer.role == Message.Role.ASSISTANT and not answer.is_deleted:
        first = (
            Stream.objects.filter(message_id=answer.pk)
            .select_related("user_message")
            .order_by("version")
            .first()
        )
    if first is None:
        raise validation_error(NOT_AN_ANSWER, {"messageId": [NOT_AN_ANSWER]})
    if first.user_message.is_deleted:
        raise validation_error(
            "The prompt of this answer was deleted: there is nothing to answer again.",
            {"messageId": ["Its prompt was deleted."]},
        )
    return first


def _refuse_while_writing(answer_id) -> None:
    """STREAM_LIMIT while a version of the answer is pending or streaming (one whose worker
    died is failed first, so it doesn't block the answer for ever)."""
    for stream in Stream.objects.filter(message_id=answer_id, status__in=RUNNING):
        if stream_sweep(stream=stream).status not in Stream.FINAL:
            raise _still_writing()


def regenerate_draft(
    *, user, message_id, stream_id: uuid.UUID, agent_id=None, config: dict | None = None
) -> StreamPlan:
    """Check a regenerate and plan its version, storing nothing (``regenerate_record``
    numbers it, under the message's lock): NOT_FOUND or FORBIDDEN unless the user is a
    member, VALIDATION_ERROR unless the message is an answer to a prompt (or for an unknown
    agent), STREAM_LIMIT while a version is being written."""
    answer = message_get_for_member(user=user, message_id=message_id)
    prompt = _first_stream(answer).user_message
    _refuse_while_writing(answer.pk)
    session_agent_id = ChatSession.objects.filter(pk=answer.session_id).values_list(
        "agent_id", flat=True
    )[0]
    target = stream_target(
        session_id=answer.session_id,
        session_agent_id=answer.agent_id or session_agent_id,
        agent_id=agent_id,
        config=config,
    )
    messages = context_messages(
        session_id=answer.session_id,
        system_prompt=target.system_prompt,
        parent_id=prompt.parent_id,
        through_seq=prompt.seq,
    )
    return StreamPlan(
        stream_id=stream_id,
        session_id=answer.session_id,
        message_id=answer.pk,
        user_message_id=prompt.pk,
        agent_id=target.agent_id,
        config=target.config,
        tool_names=target.tool_names,
        messages=messages,
        user=user,
        requested_by=render_user(user),
        prompt=prompt.content,
        parent_id=answer.parent_id,
    )


def _next_version(answer_id) -> int:
    latest = Stream.objects.filter(message_id=answer_id).aggregate(latest=Max("version"))
    return (latest["latest"] or 0) + 1


def regenerate_record(*, plan: StreamPlan) -> StreamPlan:
    """Store a drafted version: its ``Stream`` row and the message's ``versions`` (a durable
    ``message:edited``; its text stays the shown version's until this one finishes); the
    plan as stored. The message is locked while the check is made again and the version
    numbered, so two regenerates on two workers can't both start."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=plan.message_id)
        if Stream.objects.filter(message_id=locked.pk, status__in=RUNNING).exists():
            raise _still_writing()
        plan = dataclasses.replace(plan, version=_next_version(locked.pk))
        if not (locked.metadata or {}).get("versions"):
            # The first answer ended before its row kept its text: keep it there now.
            Stream.objects.filter(message_id=locked.pk, version=1, content="").update(
                content=locked.content
            )
        stream = stream_row(plan)
        stream.save(force_insert=True)
        assistant_message_finish(
            message_id=locked.pk,
            content=locked.content,
            tokens=locked.tokens,
            metadata=answer_version_start(message=locked, stream=stream),
            replace=True,
        )
    return plan


def regenerate_open(**request) -> StreamPlan:
    """``regenerate_draft`` then ``regenerate_record``; the plan of the new version. Two
    regenerates racing for one version number: the second is refused as still writing."""
    try:
        return regenerate_record(plan=regenerate_draft(**request))
    except IntegrityError as exc:
        raise _still_writing() from exc


@runs_to_its_end
async def answer_regenerate(*, user, message_id, agent_id=None, config: dict | None = None) -> dict:
    """Stream a new version of an answer into its message: ``{streamId, messageId,
    version}``. Refused as ``regenerate_draft`` says, or STREAM_LIMIT when
    ``MAX_CONCURRENT_STREAMS`` answers already run (nothing is saved)."""
    assistant_start_check(user)
    stream_id = uuid.uuid4()
    request = {
        "user": user,
        "message_id": message_id,
        "stream_id": stream_id,
        "agent_id": agent_id,
        "config": config,
    }
    plan = await plan_in_slot(regenerate_open, request, check=regenerate_draft)
    await room_start(plan)
    return {"streamId": str(stream_id), "messageId": str(plan.message_id), "version": plan.version}


def _answer_of(*, user, prompt_id) -> tuple[Message, uuid.UUID]:
    """The prompt (the user's own: FORBIDDEN otherwise) and its latest answer's id
    (VALIDATION_ERROR if it has none)."""
    prompt = message_get_for_member(user=user, message_id=prompt_id)
    if prompt.author_id != user.pk:
        raise forbidden("Only the author of a prompt can edit and resend it.")
    answer_id = (
        Stream.objects.filter(user_message_id=prompt.pk)
        .order_by("-started_at")
        .values_list("message_id", flat=True)
        .first()
    )
    if answer_id is None:
        raise validation_error(
            "This message has no answer: edit it, or ask the assistant with it.",
            {"messageId": ["No answer to this message."]},
        )
    return prompt, answer_id


def resend_open(*, user, message_id, content: str, stream_id: uuid.UUID) -> StreamPlan:
    """Edit the prompt (``message_edit``: its ``MessageEdit`` history kept, a durable
    ``message:edited``) and store a new version of its latest answer from the edited text,
    in one transaction."""
    prompt, answer_id = _answer_of(user=user, prompt_id=message_id)
    with transaction.atomic():
        message_edit(user=user, message_id=prompt.pk, content=content)
        return regenerate_open(user=user, message_id=answer_id, stream_id=stream_id)


def resend_check(*, user, message_id, content: str, stream_id: uuid.UUID) -> None:
    """``resend_open``'s checks, storing nothing."""
    _prompt, answer_id = _answer_of(user=user, prompt_id=message_id)
    regenerate_draft(user=user, message_id=answer_id, stream_id=stream_id)


@runs_to_its_end
async def prompt_resend(*, user, message_id, content: str) -> dict:
    """Edit a prompt and stream a new version of its answer: ``{messageId,
    answerMessageId, streamId, version}``."""
    assistant_start_check(user)
    stream_id = uuid.uuid4()
    request = {"user": user, "message_id": message_id, "content": content, "stream_id": stream_id}
    plan = await plan_in_slot(resend_open, request, check=resend_check)
    await room_start(plan)
    return {
        "messageId": str(plan.user_message_id),
        "answerMessageId": str(plan.message_id),
        "streamId": str(stream_id),
        "version": plan.version,
    }
