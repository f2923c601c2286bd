"""What a room stream stores, and when: everything when it is requested (the prompt as the
requester's message, an empty assistant message, the ``Stream`` row) and everything again
when it ends (the answer and the row's outcome). Nothing in between: the running text lives
in memory and in the shared state (TRAPS: no write per chunk).

A request is checked and stored in one call (``stream_open``): read first (``stream_draft``:
membership, agent, the prompt as it will be saved, the context, which is all the model
needs), then stored in one write (``stream_record``). Nothing reaches the room before the
commit.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from langchain_core.messages import BaseMessage

from accounts.serializers import render_user
from chat.content import content_clean
from chat.models import Message
from chat.selectors import session_brief_for_member, thread_root_get
from chat.services.assistant import assistant_exchange_open, assistant_message_finish
from chatproject.errors import validation_error

from ..context import context_messages
from ..models import ERROR_MESSAGE_MAX, Agent, Stream
from ..provider import ModelConfig, model_config
from ..stream_events import StreamEnd
from ..tools import TOOL_NAMES
from .answer_versions import answer_version_end

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamTarget:
    """Where an answer goes and how it is made."""

    session_id: uuid.UUID
    agent: Agent | None
    config: ModelConfig
    tool_names: tuple[str, ...]

    @property
    def agent_id(self) -> uuid.UUID | None:
        return self.agent.pk if self.agent is not None else None

    @property
    def system_prompt(self) -> str:
        return self.agent.system_prompt if self.agent is not None else ""


@dataclass(frozen=True)
class StreamPlan:
    """A requested answer, stored and ready to run."""

    stream_id: uuid.UUID
    session_id: uuid.UUID
    message_id: uuid.UUID
    user_message_id: uuid.UUID
    agent_id: uuid.UUID | None
    config: ModelConfig
    tool_names: tuple[str, ...]
    messages: list[BaseMessage]
    user: object
    requested_by: dict = field(default_factory=dict)
    prompt: str = ""
    """The prompt as saved (the content filter may have masked words)."""
    parent_id: uuid.UUID | None = None
    """The thread both messages go in, if any."""
    version: int = 1
    """Which version of the message's answer this is (``llm.services.regenerate``)."""


def stream_target(
    *, session_id, session_agent_id=None, agent_id=None, config: dict | None = None
) -> StreamTarget:
    """The agent of an answer in a session (the requested one, else the session's
    ``session_agent_id``) and its model settings."""
    agent = None
    if agent_id is not None:
        agent = Agent.objects.filter(pk=agent_id).first()
        if agent is None:
            raise validation_error("No such agent.", {"agentId": ["No agent has this id."]})
    elif session_agent_id is not None:
        agent = Agent.objects.filter(pk=session_agent_id).first()
    # Without an agent every built-in tool is offered; an agent offers the ones it names.
    tool_names = tuple(agent.tools) if agent is not None else TOOL_NAMES
    return StreamTarget(
        session_id=session_id,
        agent=agent,
        config=model_config(agent=agent, config=config),
        tool_names=tool_names,
    )


def stream_draft(
    *,
    user,
    session_id,
    stream_id: uuid.UUID,
    prompt: str,
    agent_id=None,
    parent_id=None,
    config: dict | None = None,
    one_to_one: bool = False,
) -> StreamPlan:
    """Check a request and plan its answer, storing nothing: NOT_FOUND or FORBIDDEN unless
    the user is a member, CONTENT_REJECTED for a refused prompt, a validation error for an
    unknown agent or parent. The plan names its messages already; ``stream_record`` stores
    them under those ids. ``one_to_one``: the session is a conversation of ``/ws/ai/``, so
    the model is told it talks with one person and messages carry no names; otherwise it is
    a room (``llm.system_prompts``)."""
    session = session_brief_for_member(user=user, session_id=session_id)
    text, _flagged = content_clean(prompt)
    root = thread_root_get(session_id=session.id, parent_id=parent_id)
    target = stream_target(
        session_id=session.id,
        session_agent_id=session.agent_id,
        agent_id=agent_id,
        config=config,
    )
    root_id = root.pk if root is not None else None
    messages = context_messages(
        session_id=session.id,
        system_prompt=target.system_prompt,
        parent_id=root_id,
        pending=(user, text),
        named=not one_to_one,
    )
    return StreamPlan(
        stream_id=stream_id,
        session_id=session.id,
        message_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        agent_id=target.agent_id,
        config=target.config,
        tool_names=target.tool_names,
        messages=messages,
        user=user,
        requested_by=render_user(user),
        prompt=text,
        parent_id=root_id,
    )


def stream_row(plan: StreamPlan) -> Stream:
    """The ``Stream`` row of a plan, not saved: every way of starting an answer (a request,
    an ``@assistant`` mention, a regenerate) stores the same row."""
    return Stream(
        id=plan.stream_id,
        session_id=plan.session_id,
        message_id=plan.message_id,
        user_message_id=plan.user_message_id,
        requested_by=plan.user,
        agent_id=plan.agent_id,
        model=plan.config.model,
        max_tokens=plan.config.max_tokens,
        version=plan.version,
    )


def answer_metadata(plan: StreamPlan) -> dict:
    """The starting metadata of a plan's assistant message. Who asked and with which model,
    stored from the start: a reload mid-answer shows what the room's live view shows
    ("Answering alice…", the model's badge); the prompt it answers: the web app offers
    "Edit and resend" on it."""
    return {
        "streamId": str(plan.stream_id),
        "status": Stream.Status.STREAMING,
        "model": plan.config.model,
        "requestedBy": plan.requested_by,
        "promptId": str(plan.user_message_id),
    }


def stream_record(*, plan: StreamPlan, prompt: str) -> None:
    """Store a drafted request in one write: the prompt (``message:new``, role user;
    membership checked again), the empty assistant message (``message:new``) and the
    ``Stream`` row. A refusal stores nothing; both messages go out once stored."""
    stream = stream_row(plan)
    assistant_exchange_open(
        author=plan.user,
        session_id=plan.session_id,
        prompt=prompt,
        parent_id=plan.parent_id,
        agent_id=plan.agent_id,
        metadata=answer_metadata(plan),
        prompt_id=plan.user_message_id,
        answer_id=plan.message_id,
        also=[stream],
    )


def stream_open(**request) -> StreamPlan:
    """Check a request and store it: ``stream_draft`` with the same keyword arguments, then
    ``stream_record``; the plan of its answer. Refused as ``stream_draft`` says, or when the
    requester is no member by the time it is stored; a refusal stores nothing."""
    plan = stream_draft(**request)
    stream_record(plan=plan, prompt=request["prompt"])
    return plan


@dataclass(frozen=True)
class StreamOutcome:
    """How an answer ended, and what it cost on the wire."""

    status: str
    ending: StreamEnd
    finish_reason: str = ""
    error_code: str = ""
    error_message: str = ""
    """The words the room was told (``stream:error``'s message)."""
    stopped_by: dict | None = None
    """The member who stopped it, as ``stream:stopped``'s ``stoppedBy``."""
    first_token_at: datetime | None = None
    chunks_sent: int = 0
    chunk_ends: list[int] = field(default_factory=list)
    bytes_sent: int = 0
    citations: list[dict] = field(default_factory=list)
    """The files the answer was given passages of (``llm.retrieval``)."""


def stream_finish(*, plan: StreamPlan, outcome: StreamOutcome) -> Message | None:
    """Save the answer (whatever part of it exists) and the stream's outcome; the message
    goes out as ``message:edited``. None if the session is gone meanwhile."""
    return stream_outcome_save(
        stream_id=plan.stream_id,
        message_id=plan.message_id,
        model=plan.config.model,
        outcome=outcome,
        version=plan.version,
    )


def stream_outcome_save(
    *, stream_id, message_id, model: str, outcome: StreamOutcome, version: int = 1
) -> Message | None:
    """``stream_finish`` for a stream known by its ids (``model``: the one it was asked
    for), so the sweeper ends a stream whose worker died exactly as that worker would
    have. A later ``version`` (a regenerate) is saved on its row, and the message shows the
    newest finished version (``answer_version_end``)."""
    ending = outcome.ending
    metadata = {
        "streamId": str(stream_id),
        "status": outcome.status,
        "model": ending.model or model,
        "finishReason": outcome.finish_reason or None,
        "toolCalls": ending.tool_calls,
    }
    # The files the answer was given (``llm.retrieval``), for the web app to list under it.
    if outcome.citations:
        metadata["citations"] = outcome.citations
    # How it ended in the words the room saw live, so a reload reads the same.
    if outcome.stopped_by:
        metadata["stoppedBy"] = outcome.stopped_by
    if outcome.error_code:
        metadata["errorCode"] = outcome.error_code
    error_message = outcome.error_message[:ERROR_MESSAGE_MAX]
    if error_message:
        metadata["errorMessage"] = error_message
    stopped_by_id = outcome.stopped_by.get("id") if outcome.stopped_by else None
    try:
        with transaction.atomic():
            shown = {"content": ending.content, "tokens": ending.tokens, "metadata": metadata}
            if version > 1:
                shown = answer_version_end(
                    message_id=message_id, version=version, status=outcome.status, **shown
                )
            message = assistant_message_finish(message_id=message_id, **shown)
            Stream.objects.filter(pk=stream_id).update(
                content=ending.content,
                status=outcome.status,
                tokens_generated=ending.tokens,
                prompt_tokens=ending.prompt_tokens,
                finish_reason=outcome.finish_reason,
                error_code=outcome.error_code,
                error_message=error_message,
                first_token_at=outcome.first_token_at,
                completed_at=timezone.now(),
                chunks_sent=outcome.chunks_sent,
                chunk_ends=outcome.chunk_ends,
                bytes_sent=outcome.bytes_sent,
                errors=ending.errors,
                stopped_by_id=stopped_by_id,
                citations=outcome.citations,
            )
    except Message.DoesNotExist:
        logger.info("stream %s ended after its session was deleted", stream_id)
        return None
    return message
