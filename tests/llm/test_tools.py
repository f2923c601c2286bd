"""The model's tools: arithmetic without eval, the time, and a search that stays inside
the session and what the requester may see."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from chat.models import Membership
from chat.services.messages import message_delete, message_send
from chat.services.sessions import session_create
from llm.calculator import CalculatorError, calculate
from llm.tools import (
    TOOL_NAMES,
    build_tools,
    calculator,
    get_current_time,
    tool_schema,
    unknown_tools,
)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10", 1024),
        ("2 ^ 3", 8),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("-3 + +1", -2),
        ("1 / 4", 0.25),
        ("1.5 * 2", 3.0),
    ],
)
def test_calculator_does_arithmetic(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "x + 1",
        "[1, 2]",
        "(lambda: 1)()",
        "1 if True else 2",
        "True + True",
        "'a' * 3",
        "9 ** 9 ** 9",
        "1 +",
        "1" * 300,
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(CalculatorError):
        calculate(expression)


def test_calculator_tool_answers_errors_as_text():
    assert calculator("6 * 7") == "42"
    assert calculator("1 / 0") == "error: Division by zero."
    assert calculator("10 / 4") == "2.5"


def test_get_current_time_in_utc_and_a_zone():
    utc = datetime.fromisoformat(get_current_time())
    paris = datetime.fromisoformat(get_current_time("Europe/Paris"))
    assert utc.utcoffset().total_seconds() == 0
    assert abs((paris - utc).total_seconds()) < 5
    assert get_current_time("Mars/Olympus").startswith("error:")


def test_tool_names_and_unknown_ones():
    assert set(TOOL_NAMES) == {"calculator", "get_current_time", "search_messages"}
    assert unknown_tools(["calculator", "shell"]) == ["shell"]
    assert [t.name for t in build_tools(TOOL_NAMES)] == ["calculator", "get_current_time"]


def test_tools_that_need_no_session_are_built_once_and_every_kind_converted_once():
    first, second = build_tools(TOOL_NAMES), build_tools(TOOL_NAMES)
    assert [a is b for a, b in zip(first, second, strict=True)] == [True, True]

    one, other = (build_tools(["search_messages"], session_id=i, user=i)[0] for i in (1, 2))
    assert one is not other
    assert tool_schema(one) is tool_schema(other)
    assert tool_schema(one) == {
        "type": "function",
        "function": {
            "name": "search_messages",
            "description": "Search this chat room's earlier messages for words; returns the "
            "newest matches with their authors and times.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "limit": {"default": 5, "type": "integer"},
                },
                "required": ["query"],
            },
        },
    }


@pytest.mark.django_db(transaction=True)
async def test_search_messages_stays_in_its_session_and_hides_deleted(alice, bob):
    from channels.db import database_sync_to_async

    @database_sync_to_async
    def setup():
        mine = session_create(creator=alice, title="mine", member_ids=[bob.pk])
        other = session_create(creator=bob, title="other")
        message_send(author=alice, session_id=mine.pk, content="the launch code is banana")
        gone = message_send(author=alice, session_id=mine.pk, content="banana secret deleted")
        message_delete(user=alice, message_id=gone.pk)
        message_send(author=bob, session_id=other.pk, content="banana elsewhere")
        return mine

    mine = await setup()
    (search,) = build_tools(["search_messages"], session_id=mine.pk, user=bob)

    found = json.loads(await search.ainvoke({"query": "banana"}))

    assert found["total"] == 1
    assert [(r["author"], r["content"]) for r in found["results"]] == [
        ("alice", "the launch code is banana")
    ]

    await database_sync_to_async(
        lambda: Membership.objects.filter(session=mine, user=bob).delete()
    )()
    with pytest.raises(Exception, match="not a member"):
        await search.ainvoke({"query": "banana"})
