"""``POST /api/stream`` (seed 003): one answer to the conversation a client sent, streamed
back as server-sent events while the request lasts.

``sse_prepare`` checks and stores everything before the response starts, so a refusal is
a JSON error, not a broken stream; ``sse_answer`` then drives the stream runner and turns its
events into ``message-start``, ``message-chunk`` (each delta), ``message-complete`` or
``error``. Unlike a room stream the answer lives in the request: a client that hangs up
closes the generator, which closes the runner, which cancels the read from Ollama and so
closes that HTTP request too. With a ``chatId`` the prompt and the answer (the part made so
far, if the client hung up) are saved in the session (``answer_records``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.db import database_sync_to_async
from langchain_core.messages import BaseMessage

from chat.selectors import session_get_for_member

from .. import sse_events
from ..context import wire_context
from ..provider import ModelConfig, chat_model, model_closing, model_config
from ..runner import run_stream
from ..selectors import agent_find
from ..sse_wire import sse_event
from ..stream_events import StreamChunk, StreamComplete, StreamEnd, StreamError
from ..tools import build_tools
from .answer_records import AnswerRecord
from .assistant_access import assistant_start_check
from .slots import slot_held

logger = logging.getLogger(__name__)

# Without a session there is nothing to search: the tools that need none.
SESSIONLESS_TOOLS = ("calculator", "get_current_time")


@dataclass(frozen=True)
class SsePlan:
    """An accepted ``/api/stream`` request, ready to answer."""

    user: object
    config: ModelConfig
    messages: list[BaseMessage]
    tool_names: tuple[str, ...]
    session_id: uuid.UUID | None
    record: AnswerRecord | None


def sse_prepare(*, user, data: dict) -> SsePlan:
    """Check the chat (NOT_FOUND, FORBIDDEN) and save the prompt in it; the model settings
    and context. Sync (database). The request names the model; a chat's agent adds its
    system prompt (unless the request has one), sampling and tools. With neither, the model
    is told it is a one-to-one assistant (``wire_context``). Bots: FORBIDDEN."""
    assistant_start_check(user)
    session = agent = None
    if data["chatId"] is not None:
        session = session_get_for_member(user=user, session_id=data["chatId"])
        agent = agent_find(session.agent_id)
    config = model_config(agent=agent, config={"model": data["model"]})
    system_prompt = data["systemPrompt"] or (agent.system_prompt if agent else "")
    if agent is not None:
        tool_names = tuple(agent.tools)
    elif session is not None:
        tool_names = ("calculator", "get_current_time", "search_messages")
    else:
        tool_names = SESSIONLESS_TOOLS
    record = None
    if session is not None:
        record = AnswerRecord(
            user=user, session_id=session.pk, agent_id=session.agent_id, model=config.model
        )
        record.start(prompt=data["messages"][-1]["content"])
    return SsePlan(
        user=user,
        config=config,
        messages=wire_context(messages=data["messages"], system_prompt=system_prompt),
        tool_names=tool_names,
        session_id=session.pk if session is not None else None,
        record=record,
    )


async def _save(plan: SsePlan, ending: StreamEnd, *, status: str, finish_reason: str) -> None:
    if plan.record is None:
        return
    await database_sync_to_async(plan.record.finish)(
        ending=ending,
        status=status,
        finish_reason=finish_reason,
        error_code=getattr(ending, "code", ""),
        error_message=getattr(ending, "message", ""),
    )


def _cut_short(plan: SsePlan, deltas: list[str]) -> StreamEnd:
    """What a client that hung up leaves: the text so far, kept as a stopped answer."""
    return StreamEnd(
        content="".join(deltas),
        tokens=len(deltas),
        prompt_tokens=0,
        model=plan.config.model,
        duration_ms=0,
        latency_ms=None,
    )


async def sse_answer(plan: SsePlan, *, slot_key: str) -> AsyncIterator[bytes]:
    """The events of one answer; holds the (already acquired) slot ``slot_key`` until the
    answer ends or the client hangs up."""
    record = plan.record
    message_id = (record.message_id if record else None) or uuid.uuid4()
    deltas: list[str] = []
    ending: StreamEnd | None = None
    async with slot_held(slot_key):
        try:
            yield sse_event(
                sse_events.MESSAGE_START, sse_events.message_start(message_id=message_id)
            )
            tools = build_tools(plan.tool_names, session_id=plan.session_id, user=plan.user)
            llm = chat_model(plan.config)
            events = run_stream(llm, plan.messages, tools=tools)
            async with model_closing(llm), contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, StreamChunk) and event.delta:
                        deltas.append(event.delta)
                        yield sse_event(
                            sse_events.MESSAGE_CHUNK,
                            sse_events.message_chunk(message_id=message_id, content=event.delta),
                        )
                    elif isinstance(event, StreamEnd):
                        ending = event
        except (GeneratorExit, asyncio.CancelledError):
            # The client hung up: leaving the blocks above closed the request to Ollama.
            logger.info("SSE answer %s: the client hung up", message_id)
            await _save(plan, _cut_short(plan, deltas), status="stopped", finish_reason="stopped")
            raise
        except Exception:
            logger.exception("SSE answer %s failed", message_id)
            ending = None
        if ending is None:
            ending = StreamError(
                **vars(_cut_short(plan, deltas)), code="INTERNAL", message="The answer failed."
            )
        if isinstance(ending, StreamComplete):
            await _save(plan, ending, status="completed", finish_reason=ending.finish_reason)
            yield sse_event(
                sse_events.MESSAGE_COMPLETE,
                sse_events.message_complete(
                    message_id=message_id,
                    full_content=ending.content,
                    model=ending.model,
                    finish_reason=ending.finish_reason,
                    tokens=ending.tokens,
                    prompt_tokens=ending.prompt_tokens,
                ),
            )
        else:
            await _save(plan, ending, status="failed", finish_reason="error")
            yield sse_event(
                sse_events.ERROR, sse_events.error(message=ending.message, code=ending.code)
            )
