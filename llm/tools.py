"""The tools the model may call in a room: ``calculator``, ``get_current_time`` and
``search_messages``. An agent names the ones it offers (``Agent.tools``).

``search_messages`` is bound to one session and one requester when a stream is prepared:
it searches that session only, and only while the requester is still a member.

Building a tool from a function and converting it to the schema the model is sent both make
pydantic models: together ~15 ms per answer on the event loop (bench/stream.py). So the two
tools that need no session are built once per process, ``search_messages`` has a fixed
argument model and costs ~0.1 ms to bind, and ``tool_schema`` converts each kind of tool once.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from channels.db import database_sync_to_async
from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from chat.selectors import message_search, session_get_for_member

from .calculator import CalculatorError, calculate, format_number

TOOL_NAMES = ("calculator", "get_current_time", "search_messages")
SEARCH_LIMIT_MAX = 20


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "(2 + 3) * 4 / 7" or "2 ** 10".
    Supports numbers, + - * / // % ** and parentheses."""
    try:
        return format_number(calculate(expression))
    except CalculatorError as exc:
        return f"error: {exc}"


def get_current_time(timezone: str = "UTC") -> str:
    """The current date and time (ISO-8601) in an IANA time zone such as "Europe/Paris"."""
    try:
        zone = ZoneInfo(timezone) if timezone and timezone.upper() != "UTC" else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return f"error: unknown time zone {timezone!r}"
    return datetime.now(zone).isoformat(timespec="seconds")


def _search(*, session_id, user, query: str, limit: int) -> str:
    session = session_get_for_member(user=user, session_id=session_id)
    page = message_search(session=session, query=query, limit=max(1, min(limit, SEARCH_LIMIT_MAX)))
    results = [
        {
            "author": message.author.username if message.author else message.role,
            "content": message.content,
            "createdAt": message.created_at.isoformat(timespec="seconds"),
        }
        for message in page.messages
    ]
    return json.dumps({"total": page.total, "results": results}, ensure_ascii=False)


class SearchMessagesInput(BaseModel):
    query: str
    limit: int = 5


SEARCH_MESSAGES_DESCRIPTION = (
    "Search this chat room's earlier messages for words; returns the newest matches with "
    "their authors and times."
)


def search_messages_tool(*, session_id, user) -> BaseTool:
    async def search_messages(query: str, limit: int = 5) -> str:
        return await database_sync_to_async(_search)(
            session_id=session_id, user=user, query=query, limit=limit
        )

    return StructuredTool(
        name="search_messages",
        description=SEARCH_MESSAGES_DESCRIPTION,
        args_schema=SearchMessagesInput,
        coroutine=search_messages,
    )


@functools.cache
def _sessionless_tools() -> dict[str, BaseTool]:
    """The tools that depend on nothing but their arguments: one of each per process."""
    tools = map(StructuredTool.from_function, (calculator, get_current_time))
    return {tool.name: tool for tool in tools}


def build_tools(names: Sequence[str], *, session_id=None, user=None) -> list[BaseTool]:
    """The named tools, ready to bind. ``search_messages`` needs a session and a user and is
    left out without them."""
    tools: list[BaseTool] = []
    for name in names:
        if name in _sessionless_tools():
            tools.append(_sessionless_tools()[name])
        elif name == "search_messages" and session_id is not None and user is not None:
            tools.append(search_messages_tool(session_id=session_id, user=user))
    return tools


# args schema -> {(name, description): the tool in Ollama's (OpenAI) format}; weak, so the
# one-off models of tools made elsewhere (``StructuredTool.from_function``) don't pile up.
_schemas: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tool_schema(tool: BaseTool) -> dict:
    """``tool`` as the model is told of it, converted once per name, description and
    argument model (the tool's function plays no part in it)."""
    known = _schemas.setdefault(tool.args_schema, {})
    key = (tool.name, tool.description)
    if key not in known:
        known[key] = convert_to_openai_tool(tool)
    return known[key]


def unknown_tools(names: Sequence[str]) -> list[str]:
    return [name for name in names if name not in TOOL_NAMES]
