"""``POST /api/llm/query``: one answer, returned whole rather than streamed, with tools on.

The same runner, context builder and tools as a room stream: the runner streams from Ollama
and this keeps only the ending. With a ``sessionId`` (the caller must be a member) the
session's latest messages are the context, seen as a room stream sees them (the prompt, named
after its asker, is the last of the ``CONTEXT_LIMIT``), and ``search_messages`` searches it;
nothing is saved there: a query asks about a room, it does not speak in it. The agent is the
requested one, else the session's; the request's model settings win over it. The system prompt
is the agent's, else the default (``llm.system_prompts``): a room's with a session, a
one-to-one assistant's without.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from langchain_core.messages import BaseMessage

from chat.selectors import session_get_for_member
from chatproject.errors import DomainError, validation_error

from ..context import context_messages, wire_context
from ..models import Agent
from ..provider import ModelConfig, chat_model, model_closing, model_config
from ..runner import run_stream
from ..selectors import agent_find
from ..stream_events import StreamEnd, StreamError
from ..tools import TOOL_NAMES, build_tools
from .assistant_access import assistant_start_check
from .slots import slot
from .sse_answer import SESSIONLESS_TOOLS


@dataclass(frozen=True)
class QueryPlan:
    config: ModelConfig
    messages: list[BaseMessage]
    tool_names: tuple[str, ...]
    session_id: uuid.UUID | None


def query_plan(*, user, prompt: str, session_id=None, agent_id=None, config=None) -> QueryPlan:
    """Check the session and agent; the model settings, tools and context. Sync."""
    session = None
    if session_id is not None:
        session = session_get_for_member(user=user, session_id=session_id)
    if agent_id is not None:
        agent = Agent.objects.filter(pk=agent_id).first()
        if agent is None:
            raise validation_error("No such agent.", {"agentId": ["No agent has this id."]})
    else:
        agent = agent_find(session.agent_id) if session is not None else None
    if agent is not None:
        tool_names = tuple(agent.tools)
    else:
        tool_names = TOOL_NAMES if session is not None else SESSIONLESS_TOOLS
    system_prompt = agent.system_prompt if agent is not None else ""
    if session is not None:
        messages = context_messages(
            session_id=session.pk, system_prompt=system_prompt, pending=(user, prompt)
        )
    else:
        messages = wire_context(
            messages=[{"role": "user", "content": prompt}], system_prompt=system_prompt
        )
    return QueryPlan(
        config=model_config(agent=agent, config=config),
        messages=messages,
        tool_names=tool_names,
        session_id=session.pk if session is not None else None,
    )


async def llm_query(
    *, user, prompt: str, session_id=None, agent_id=None, config: dict | None = None
) -> dict:
    """``{content, model, tokens, promptTokens, toolCalls}``; a failed answer raises its
    contract code (INVALID_MODEL, LLM_UNAVAILABLE, INTERNAL). Bots: FORBIDDEN."""
    assistant_start_check(user)
    plan = await database_sync_to_async(query_plan)(
        user=user, prompt=prompt, session_id=session_id, agent_id=agent_id, config=config
    )
    ending: StreamEnd | None = None
    async with slot(f"query-{uuid.uuid4().hex}"):
        tools = build_tools(plan.tool_names, session_id=plan.session_id, user=user)
        async with model_closing(chat_model(plan.config)) as llm:
            async for event in run_stream(llm, plan.messages, tools=tools):
                if isinstance(event, StreamEnd):
                    ending = event
    if ending is None:
        raise DomainError("INTERNAL", "The answer failed.")
    if isinstance(ending, StreamError):
        raise DomainError(ending.code, ending.message)
    return {
        "content": ending.content,
        "model": ending.model,
        "tokens": ending.tokens,
        "promptTokens": ending.prompt_tokens,
        "toolCalls": ending.tool_calls,
    }
