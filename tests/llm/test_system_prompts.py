"""Every LLM door sends one system prompt, as the model receives it: the real langchain-ollama
client talks to the Ollama emulator, which records the messages it was sent. The request's
``systemPrompt`` wins over the agent's, which wins over the door's default
(``llm.system_prompts``): a room's tells the model it is in a group chat whose messages
carry their authors' names, and they do; a one-to-one door's tells it it is an assistant."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import ChatSession
from chat.services.messages import message_send
from chat.services.sessions import session_create
from llm.models import Agent
from llm.system_prompts import GROUP_CHAT, ONE_TO_ONE

from ..chat.conftest import request
from .sse import asgi_client, bearer, parse_sse
from .streams import streams_finished, streams_stopped, until

pytestmark = [pytest.mark.django_db(transaction=True)]

AGENT_PROMPT = "You are Ada, the release manager. Answer in one sentence."


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


def sent(emulator) -> list[tuple[str, str]]:
    """(role, content) of every message of the one request Ollama got."""
    (only,) = emulator.requests()
    return [(m["role"], m["content"]) for m in only["messages"]]


def system_messages(emulator) -> list[str]:
    return [content for role, content in sent(emulator) if role == "system"]


@database_sync_to_async
def make_session(creator, *members, agent: Agent | None = None) -> ChatSession:
    return session_create(
        creator=creator,
        title="general",
        member_ids=[m.pk for m in members],
        agent_id=agent.pk if agent is not None else None,
    )


@database_sync_to_async
def make_agent(system_prompt: str = AGENT_PROMPT) -> Agent:
    return Agent.objects.create(name="ada", model="llama3.2", system_prompt=system_prompt)


@database_sync_to_async
def say(author, session, content: str) -> None:
    message_send(author=author, session_id=session.pk, content=content)


# -- a room: stream:request on /ws/chat/ ------------------------------------------------------


async def room_answer(ws_connect, user, session, prompt: str, **extra) -> None:
    ws = await ws_connect(user)
    reply = await request(
        ws, "stream:request", {"sessionId": str(session.pk), "prompt": prompt, **extra}, ref="ask"
    )
    assert reply["event"] == "ack", reply
    await streams_finished()


async def test_a_room_without_an_agent_is_a_group_chat_whose_messages_carry_names(
    ws_connect, ollama_emulator_settings, alice, bob
):
    room = await make_session(alice, bob)
    await say(alice, room, "the launch is on Tuesday")
    await say(bob, room, "I thought Wednesday")

    await room_answer(ws_connect, alice, room, "who is right?")

    assert sent(ollama_emulator_settings) == [
        ("system", GROUP_CHAT),
        ("user", "alice: the launch is on Tuesday"),
        ("user", "bob: I thought Wednesday"),
        ("user", "alice: who is right?"),
    ]


async def test_a_room_of_one_is_still_a_room_its_messages_named_as_its_prompt_says(
    ws_connect, ollama_emulator_settings, alice
):
    room = await make_session(alice)

    await room_answer(ws_connect, alice, room, "anyone here?")

    assert sent(ollama_emulator_settings) == [
        ("system", GROUP_CHAT),
        ("user", "alice: anyone here?"),
    ]


@pytest.mark.parametrize(
    ("agent_prompt", "expected"), [(AGENT_PROMPT, AGENT_PROMPT), ("", GROUP_CHAT)]
)
@pytest.mark.parametrize("how", ["session's agent", "requested agent"])
async def test_a_room_agents_prompt_replaces_the_default_and_a_blank_one_keeps_it(
    ws_connect, ollama_emulator_settings, alice, bob, agent_prompt, expected, how
):
    agent = await make_agent(agent_prompt)
    if how == "session's agent":
        room = await make_session(alice, bob, agent=agent)
        extra = {}
    else:
        room = await make_session(alice, bob)
        extra = {"agentId": str(agent.pk)}

    await room_answer(ws_connect, alice, room, "status?", **extra)

    assert system_messages(ollama_emulator_settings) == [expected]
    assert sent(ollama_emulator_settings)[1:] == [("user", "alice: status?")]


# -- /ws/ai/: chat:start (seed 001) and prompt (seed 000) -------------------------------------


async def ai_answer(ai_connect, user, event: str, conversation: ChatSession | None, text: str):
    ws = await ai_connect(user)
    if event == "chat:start":
        data = {"message": text}
        if conversation is not None:
            data["conversationId"] = str(conversation.pk)
        ending = ("chat:end", "chat:error")
    else:
        data = {"thread": str(conversation.pk), "message": {"role": "user", "content": text}}
        ending = ("ai_complete", "error")
    await ws.send_json_to({"event": event, "data": data, "ref": "r"})
    frames = await until(ws, *ending)
    assert frames[-1]["event"] in ("chat:end", "ai_complete"), frames
    await streams_finished()


@pytest.mark.parametrize("event", ["chat:start", "prompt"])
async def test_a_conversation_without_an_agent_is_one_to_one_and_unnamed(
    ai_connect, ollama_emulator_settings, alice, event
):
    conversation = await make_session(alice) if event == "prompt" else None

    await ai_answer(ai_connect, alice, event, conversation, "hello")

    assert sent(ollama_emulator_settings) == [("system", ONE_TO_ONE), ("user", "hello")]


@pytest.mark.parametrize(
    ("agent_prompt", "expected"), [(AGENT_PROMPT, AGENT_PROMPT), ("", ONE_TO_ONE)]
)
@pytest.mark.parametrize("event", ["chat:start", "prompt"])
async def test_a_conversations_agent_prompt_replaces_the_default_and_a_blank_one_keeps_it(
    ai_connect, ollama_emulator_settings, alice, event, agent_prompt, expected
):
    conversation = await make_session(alice, agent=await make_agent(agent_prompt))

    await ai_answer(ai_connect, alice, event, conversation, "hello")

    assert sent(ollama_emulator_settings) == [("system", expected), ("user", "hello")]


# -- POST /api/stream (seed 003) --------------------------------------------------------------


async def sse_answer(user, **body) -> None:
    async with asgi_client() as http:
        response = await http.post(
            "/api/stream",
            content=json.dumps({"model": "llama3.2", **body}).encode(),
            headers={"Content-Type": "application/json", **bearer(user)},
        )
    assert parse_sse(response.content)[-1]["event"] == "message-complete", response.content
    await streams_finished()


HELLO = [{"role": "user", "content": "hello"}]


async def test_a_stream_without_a_system_prompt_gets_the_one_to_one_default(
    ollama_emulator_settings, alice
):
    await sse_answer(alice, messages=HELLO)

    assert sent(ollama_emulator_settings) == [("system", ONE_TO_ONE), ("user", "hello")]


@pytest.mark.parametrize(
    ("agent_prompt", "system_prompt", "expected"),
    [
        (None, "Be brief.", "Be brief."),
        (AGENT_PROMPT, "", AGENT_PROMPT),
        (AGENT_PROMPT, "Be brief.", "Be brief."),
        ("", "", ONE_TO_ONE),
    ],
    ids=["request", "chat's agent", "request over agent", "blank agent"],
)
async def test_a_streams_system_prompt_is_the_requests_else_the_agents_else_the_default(
    ollama_emulator_settings, alice, agent_prompt, system_prompt, expected
):
    agent = await make_agent(agent_prompt) if agent_prompt is not None else None
    chat = await make_session(alice, agent=agent)

    await sse_answer(alice, messages=HELLO, chatId=str(chat.pk), systemPrompt=system_prompt)

    assert sent(ollama_emulator_settings) == [("system", expected), ("user", "hello")]


async def test_a_client_that_sends_its_own_system_message_gets_no_default(
    ollama_emulator_settings, alice
):
    await sse_answer(alice, messages=[{"role": "system", "content": "Speak French."}, *HELLO])

    assert sent(ollama_emulator_settings) == [("system", "Speak French."), ("user", "hello")]


# -- POST /api/llm/query ----------------------------------------------------------------------


def query(user, **body):
    response = Client().post(
        "/api/llm/query",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": bearer(user)["Authorization"]},
    )
    assert response.status_code == 200, response.content
    return response


def test_a_query_without_a_session_or_agent_gets_the_one_to_one_default(
    ollama_emulator_settings, alice
):
    query(alice, prompt="hello")

    assert sent(ollama_emulator_settings) == [("system", ONE_TO_ONE), ("user", "hello")]


def test_a_query_about_a_room_sees_it_as_the_room_does(ollama_emulator_settings, room, alice, bob):
    message_send(author=bob, session_id=room.pk, content="the launch is on Tuesday")

    query(alice, prompt="when is the launch?", sessionId=str(room.pk))

    assert sent(ollama_emulator_settings) == [
        ("system", GROUP_CHAT),
        ("user", "bob: the launch is on Tuesday"),
        ("user", "alice: when is the launch?"),
    ]


@pytest.mark.parametrize(
    ("agent_prompt", "with_session", "expected"),
    [
        (AGENT_PROMPT, False, AGENT_PROMPT),
        (AGENT_PROMPT, True, AGENT_PROMPT),
        ("", False, ONE_TO_ONE),
        ("", True, GROUP_CHAT),
    ],
)
def test_a_querys_agent_prompt_replaces_the_default_and_a_blank_one_keeps_it(
    ollama_emulator_settings, room, alice, agent_prompt, with_session, expected
):
    agent = Agent.objects.create(name="ada", model="llama3.2", system_prompt=agent_prompt)
    body = {"prompt": "hello", "agentId": str(agent.pk)}
    if with_session:
        body["sessionId"] = str(room.pk)

    query(alice, **body)

    assert system_messages(ollama_emulator_settings) == [expected]
