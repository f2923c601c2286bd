"""The tools the model may call in a room: ``calculator``, ``get_current_time`` and
``search_messages``. An agent names the ones it offers (``Agent.tools``).

``search_messages`` is bound to one session and one requester when a stream is prepared:
it searches that session only, and only while the requester is still a member.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from channels.db import database_sync_to_async
from langchain_core.tools import BaseTool, StructuredTool

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


def search_messages_tool(*, session_id, user) -> BaseTool:
    async def search_messages(query: str, limit: int = 5) -> str:
        """Search this chat room's earlier messages for words; returns the best matches
        with their authors and times."""
        return await database_sync_to_async(_search)(
            session_id=session_id, user=user, query=query, limit=limit
        )

    return StructuredTool.from_function(coroutine=search_messages, name="search_messages")


def build_tools(names: Sequence[str], *, session_id=None, user=None) -> list[BaseTool]:
    """The named tools, ready to bind. ``search_messages`` needs a session and a user and is
    left out without them."""
    tools: list[BaseTool] = []
    for name in names:
        if name == "calculator":
            tools.append(StructuredTool.from_function(calculator))
        elif name == "get_current_time":
            tools.append(StructuredTool.from_function(get_current_time))
        elif name == "search_messages" and session_id is not None and user is not None:
            tools.append(search_messages_tool(session_id=session_id, user=user))
    return tools


def unknown_tools(names: Sequence[str]) -> list[str]:
    return [name for name in names if name not in TOOL_NAMES]
