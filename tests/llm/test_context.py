"""What the model sees: one system prompt (the given one or the default), the latest 25
messages (or a thread's), deleted ones left out, authors named in a room, earlier tool calls;
and for ``/api/stream`` the conversation its client sent."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from chat.models import Message
from chat.services.assistant import assistant_message_create, assistant_message_finish
from chat.services.messages import message_delete, message_send
from chat.services.sessions import session_create
from llm.context import CONTEXT_LIMIT, context_messages, wire_context
from llm.system_prompts import GROUP_CHAT, ONE_TO_ONE

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
        HumanMessage("alice: hello"),
        AIMessage("hi there"),
        HumanMessage("alice: how are you?"),
    ]


def test_without_a_system_prompt_a_room_is_told_how_its_messages_are_named(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="hello")

    system, said = context_messages(session_id=solo.pk)

    assert system == SystemMessage(GROUP_CHAT)
    # The default's example is exactly the shape the builder gives a person's message.
    assert said == HumanMessage("alice: hello") and f'"{said.content}"' in GROUP_CHAT


def test_a_one_to_one_conversation_gets_its_default_and_no_names(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="hello")

    assert context_messages(session_id=solo.pk, named=False) == [
        SystemMessage(ONE_TO_ONE),
        HumanMessage("hello"),
    ]


def test_at_most_the_latest_25_and_deleted_ones_left_out(solo, alice):
    sent = [
        message_send(author=alice, session_id=solo.pk, content=f"m{i}")
        for i in range(CONTEXT_LIMIT + 5)
    ]
    message_delete(user=alice, message_id=sent[-1].pk)

    _, *history = context_messages(session_id=solo.pk, named=False)

    assert [m.content for m in history] == [f"m{i}" for i in range(4, CONTEXT_LIMIT + 4)]


def test_authors_are_named_in_a_room_with_several_people(room, alice, bob):
    message_send(author=alice, session_id=room.pk, content="hi bob")
    message_send(author=bob, session_id=room.pk, content="hi alice")
    answer(room, "hello both")

    _, *history = context_messages(session_id=room.pk)

    assert [m.content for m in history] == ["alice: hi bob", "bob: hi alice", "hello both"]


def test_a_thread_sees_its_root_and_replies_only(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="unrelated")
    root = message_send(author=alice, session_id=solo.pk, content="root")
    message_send(author=alice, session_id=solo.pk, content="reply", parent_id=root.pk)

    def said(**where):
        return [m.content for m in context_messages(session_id=solo.pk, named=False, **where)]

    assert said(parent_id=root.pk) == [ONE_TO_ONE, "root", "reply"]
    assert said() == [ONE_TO_ONE, "unrelated", "root"]


def test_empty_placeholders_are_left_out(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="question")
    placeholder = assistant_message_create(session_id=solo.pk)

    _, *history = context_messages(session_id=solo.pk, named=False)

    assert placeholder.content == "" and history == [HumanMessage("question")]


def test_earlier_tool_calls_go_back_as_calls_and_results(solo, alice):
    message_send(author=alice, session_id=solo.pk, content="what is 6*7?")
    calls = [{"name": "calculator", "args": {"expression": "6*7"}, "result": "42"}]
    answer(solo, "It is 42.", tool_calls=calls)

    _, _, call, result, text = context_messages(session_id=solo.pk)

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

    assert kinds == ["SystemMessage", "HumanMessage", "AIMessage", "ToolMessage"]


def test_a_pending_prompt_comes_last_and_takes_one_of_the_places(room, alice):
    for n in range(CONTEXT_LIMIT + 3):
        message_send(author=alice, session_id=room.pk, content=f"m{n}")

    _, *history = context_messages(session_id=room.pk, pending=(alice, "not stored yet"))

    assert len(history) == CONTEXT_LIMIT
    assert history[-1] == HumanMessage("alice: not stored yet")
    assert history[0].content == f"alice: m{CONTEXT_LIMIT + 3 - (CONTEXT_LIMIT - 1)}"


def test_a_clients_conversation_gets_the_one_to_one_default_unless_it_gives_one():
    hello = [{"role": "user", "content": "hello"}]
    own = [{"role": "system", "content": "Speak French."}, *hello]

    assert wire_context(messages=hello) == [SystemMessage(ONE_TO_ONE), HumanMessage("hello")]
    assert wire_context(messages=hello, system_prompt="Be brief.")[0] == SystemMessage("Be brief.")
    assert wire_context(messages=own) == [SystemMessage("Speak French."), HumanMessage("hello")]
