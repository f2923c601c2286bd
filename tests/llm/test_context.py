"""What the model sees of a room: system prompt, the latest 25 messages (or a thread's),
deleted ones left out, authors named when several people talk, earlier tool calls."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from chat.models import Message
from chat.services.assistant import assistant_message_create, assistant_message_finish
from chat.services.messages import message_delete, message_send
from chat.services.sessions import session_create
from llm.context import CONTEXT_LIMIT, context_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def solo(alice):
    return session_create(creator=alice, title="just me")


def answer(session, text: str, tool_calls=None) -> Message:
    message = assistant_message_create(session_id=session.pk)
    metadata = {"status": "completed"}
    if tool_calls is not None:
        metadata["toolCalls"] = tool_calls
    return assistant_message_finish(
        message_id=message.pk, content=text, tokens=3, metadata=metadata
    )


def test_system_prompt_then_messages_oldest_first(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="hello")
    answer(solo, "hi there")
    message_send(author=alice, session_id=solo.pk, content="how are you?")

    history = context_messages(session_id=solo.pk, system_prompt="Be brief.")

    assert history == [
        SystemMessage("Be brief."),
        HumanMessage("hello"),
        AIMessage("hi there"),
        HumanMessage("how are you?"),
    ]


def test_at_most_the_latest_25_and_deleted_ones_left_out(solo, alice):
    sent = [
        message_send(author=alice, session_id=solo.pk, content=f"m{i}")
        for i in range(CONTEXT_LIMIT + 5)
    ]
    message_delete(user=alice, message_id=sent[-1].pk)

    history = context_messages(session_id=solo.pk)

    assert [m.content for m in history] == [f"m{i}" for i in range(4, CONTEXT_LIMIT + 4)]


def test_authors_are_named_in_a_room_with_several_people(room, alice, bob):
    message_send(author=alice, session_id=room.pk, content="hi bob")
    message_send(author=bob, session_id=room.pk, content="hi alice")
    answer(room, "hello both")

    history = context_messages(session_id=room.pk)

    assert [m.content for m in history] == ["alice: hi bob", "bob: hi alice", "hello both"]


def test_a_thread_sees_its_root_and_replies_only(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="unrelated")
    root = message_send(author=alice, session_id=solo.pk, content="root")
    message_send(author=alice, session_id=solo.pk, content="reply", parent_id=root.pk)

    assert [m.content for m in context_messages(session_id=solo.pk, parent_id=root.pk)] == [
        "root",
        "reply",
    ]
    assert [m.content for m in context_messages(session_id=solo.pk)] == ["unrelated", "root"]


def test_empty_placeholders_are_left_out(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="question")
    placeholder = assistant_message_create(session_id=solo.pk)

    history = context_messages(session_id=solo.pk)

    assert placeholder.content == "" and history == [HumanMessage("question")]


def test_earlier_tool_calls_go_back_as_calls_and_results(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="what is 6*7?")
    calls = [{"name": "calculator", "args": {"expression": "6*7"}, "result": "42"}]
    answer(solo, "It is 42.", tool_calls=calls)

    _, call, result, text = context_messages(session_id=solo.pk)

    assert isinstance(call, AIMessage) and call.content == ""
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("calculator", {"expression": "6*7"})
    ]
    assert isinstance(result, ToolMessage)
    assert (result.content, result.tool_call_id) == ("42", call.tool_calls[0]["id"])
    assert text == AIMessage("It is 42.")


def test_an_answer_made_of_tool_calls_only_is_kept(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="time?")
    answer(solo, "", tool_calls=[{"name": "get_current_time", "args": {}, "result": "noon"}])

    kinds = [type(m).__name__ for m in context_messages(session_id=solo.pk)]

    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage"]


def test_a_pending_prompt_comes_last_and_takes_one_of_the_places(room, alice):
    for n in range(CONTEXT_LIMIT + 3):
        message_send(author=alice, session_id=room.pk, content=f"m{n}")

    history = context_messages(session_id=room.pk, pending=(alice, "not stored yet"))

    assert len(history) == CONTEXT_LIMIT
    assert history[-1] == HumanMessage("alice: not stored yet")
    assert history[0].content == f"alice: m{CONTEXT_LIMIT + 3 - (CONTEXT_LIMIT - 1)}"
