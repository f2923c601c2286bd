"""What the model sees: one system prompt (the one given, else the default of
``llm.system_prompts``), then the session's (or one thread's) latest messages, oldest first
(``context_messages``); or, for ``/api/stream``, whose client keeps the conversation itself,
the messages it sent (``wire_context``).

At most ``CONTEXT_LIMIT`` messages are taken; deleted ones and empty assistant
placeholders (answers still being made, or failed before any text) are left out. In a room
each person's message starts with their name and a colon (``alice: hello``), so the model
can tell them apart, as the room's default system prompt says; in a one-to-one conversation
(``/ws/ai/``) messages carry no names. An assistant message that called tools goes back as
the calls it made (``AIMessage.tool_calls``) and their results (``ToolMessage``), then its
text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from django.db.models import Q
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from chat.models import Message

from .system_prompts import ONE_TO_ONE, default_system_prompt

CONTEXT_LIMIT = 25


class _Said(NamedTuple):
    """What the model is shown of one message: the few columns it reads."""

    pk: uuid.UUID | None
    role: str
    content: str
    metadata: dict
    author_name: str | None


def context_messages(
    *,
    session_id,
    system_prompt: str = "",
    parent_id=None,
    pending: tuple[object, str] | None = None,
    named: bool = True,
    through_seq: int | None = None,
) -> list[BaseMessage]:
    """The conversation to send for an answer in ``session_id`` (in the thread under
    ``parent_id`` when given).

    ``pending`` is a prompt not stored yet, ``(author, text)``: it comes last, in one of the
    ``CONTEXT_LIMIT`` places, as it will read once stored: a room stream reads its context
    before the transaction that stores its prompt. ``named``: whether each person's message
    carries their name (a room; not a one-to-one conversation); without a ``system_prompt``
    the default for that kind of conversation is sent. ``through_seq``: only messages up to
    that seq (a regenerated answer's prompt), never the answer itself nor what came after.

    The messages are read as rows of the five columns used, not as models with their
    authors: building those was most of the time of a request's context."""
    places = CONTEXT_LIMIT - (pending is not None)
    rows = _latest(session_id=session_id, parent_id=parent_id, limit=places, through=through_seq)
    latest = [*reversed(rows)]
    if pending is not None:
        author, text = pending
        latest.append(_Said(None, Message.Role.USER, text, {}, author.username))
    history: list[BaseMessage] = [
        SystemMessage(system_prompt or default_system_prompt(named=named))
    ]
    for said in latest:
        history.extend(_as_model_messages(said, named=named))
    return history


def _latest(*, session_id, parent_id, limit: int, through: int | None = None) -> list[_Said]:
    """The conversation's latest messages, newest first, as rows of the columns used."""
    conversation = (
        Q(parent__isnull=True) if parent_id is None else Q(pk=parent_id) | Q(parent_id=parent_id)
    )
    if through is not None:
        conversation &= Q(seq__lte=through)
    rows = (
        Message.objects.filter(conversation, session_id=session_id, is_deleted=False)
        # Placeholders are skipped in the query so they don't take places among the 25.
        .exclude(role=Message.Role.ASSISTANT, content="", metadata__toolCalls__0__isnull=True)
        .order_by("-seq")
        .values_list("pk", "role", "content", "metadata", "author__username")[:limit]
    )
    return [_Said(*row) for row in rows]


def _as_model_messages(said: _Said, *, named: bool) -> list[BaseMessage]:
    if said.role == Message.Role.ASSISTANT:
        return _assistant_messages(said)
    if said.role == Message.Role.SYSTEM:
        return [SystemMessage(said.content)]
    if said.role == Message.Role.TOOL:
        # A tool result only means something after the call that asked for it, which the
        # assistant message that made the call carries.
        return []
    if named and said.author_name is not None:
        return [HumanMessage(f"{said.author_name}: {said.content}")]
    return [HumanMessage(said.content)]


def _assistant_messages(said: _Said) -> list[BaseMessage]:
    calls = (said.metadata or {}).get("toolCalls") or []
    out: list[BaseMessage] = []
    if calls:
        ids = [f"call_{said.pk.hex[:12]}_{i}" for i in range(len(calls))]
        out.append(
            AIMessage(
                "",
                tool_calls=[
                    {"name": call.get("name", ""), "args": call.get("args") or {}, "id": call_id}
                    for call, call_id in zip(calls, ids, strict=True)
                ],
            )
        )
        out.extend(
            ToolMessage(_as_text(call.get("result")), tool_call_id=call_id, name=call.get("name"))
            for call, call_id in zip(calls, ids, strict=True)
        )
    if said.content:
        out.append(AIMessage(said.content))
    return out


def _as_text(result) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


def wire_context(*, messages: Sequence[dict], system_prompt: str = "") -> list[BaseMessage]:
    """The conversation a client sent (``[{role, content}]``, oldest first) after the system
    prompt: the one given, else ``ONE_TO_ONE`` unless the client sent a system message of its
    own (it has said what the model is, as with any chat API). A ``tool`` message is left out:
    without the call that asked for it (which this shape can't carry) it means nothing to the
    model."""
    if not system_prompt and not any(message["role"] == "system" for message in messages):
        system_prompt = ONE_TO_ONE
    history: list[BaseMessage] = [SystemMessage(system_prompt)] if system_prompt else []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            history.append(SystemMessage(content))
        elif role == "assistant":
            history.append(AIMessage(content))
        elif role == "user":
            history.append(HumanMessage(content))
    return history
