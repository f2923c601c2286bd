"""``POST /api/llm/query`` (one answer, whole, tools on) and ``GET /api/llm/models`` (the
Ollama server's models), against the Ollama emulator."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from chat.models import Message
from chat.services.messages import message_delete, message_send
from chat.throttles import rule_for, throttle_check
from llm.context import CONTEXT_LIMIT
from llm.models import Agent
from llm.ollama_catalog import tagged
from llm.system_prompts import GROUP_CHAT, ONE_TO_ONE

pytestmark = pytest.mark.django_db(transaction=True)


def query(client, **body):
    return client.post("/api/llm/query", body, format="json")


# -- query -----------------------------------------------------------------------------------


def test_a_query_is_answered_whole(client_for, alice, ollama_emulator_settings):
    ollama_emulator_settings.configure(reply="Paris is the capital.", prompt_eval_count=12)

    response = query(client_for(alice), prompt="Capital of France?")

    assert response.status_code == 200
    assert response.json() == {
        "content": "Paris is the capital.",
        "model": "llama3.2",
        "tokens": 4,
        "promptTokens": 12,
        "toolCalls": [],
    }
    (request,) = ollama_emulator_settings.requests()
    assert request["messages"] == [
        {"role": "system", "content": ONE_TO_ONE},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert {t["function"]["name"] for t in request["tools"]} == {"calculator", "get_current_time"}


def test_a_query_calls_a_tool_and_answers_with_its_result(
    client_for, alice, ollama_emulator_settings
):
    ollama_emulator_settings.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "(2 + 3) * 4"}}]
    )

    response = query(client_for(alice), prompt="What is (2 + 3) * 4?")

    body = response.json()
    assert response.status_code == 200
    assert body["toolCalls"] == [
        {"name": "calculator", "args": {"expression": "(2 + 3) * 4"}, "result": "20"}
    ]
    assert body["content"] == "Tool result: 20"
    _, second = ollama_emulator_settings.requests()
    assert (second["messages"][-1]["role"], second["messages"][-1]["content"]) == ("tool", "20")


def test_a_query_about_a_session_sees_its_history_and_saves_nothing(
    client_for, alice, room, ollama_emulator_settings
):
    message_send(author=alice, session_id=room.pk, content="the launch is on Tuesday")

    response = query(client_for(alice), prompt="When is the launch?", sessionId=str(room.pk))

    assert response.status_code == 200
    (request,) = ollama_emulator_settings.requests()
    contents = [m["content"] for m in request["messages"]]
    assert contents == [GROUP_CHAT, "alice: the launch is on Tuesday", "alice: When is the launch?"]
    assert "search_messages" in {t["function"]["name"] for t in request["tools"]}
    assert Message.objects.filter(session=room).count() == 1


def test_a_query_about_a_session_sees_its_latest_25_like_a_room_deleted_ones_left_out(
    client_for, alice, bob, room, ollama_emulator_settings
):
    sent = [
        message_send(author=bob, session_id=room.pk, content=f"m{n}")
        for n in range(CONTEXT_LIMIT + 5)
    ]
    message_delete(user=bob, message_id=sent[-1].pk)

    query(client_for(alice), prompt="sum it up", sessionId=str(room.pk))

    (request,) = ollama_emulator_settings.requests()
    system, *said = [m["content"] for m in request["messages"]]
    # The prompt takes the last of the places, as a room stream's stored prompt does.
    assert system == GROUP_CHAT and len(said) == CONTEXT_LIMIT
    assert said == [f"bob: m{n}" for n in range(5, CONTEXT_LIMIT + 4)] + ["alice: sum it up"]


def test_a_query_with_an_agent_uses_its_model_and_system_prompt(
    client_for, alice, ollama_emulator_settings
):
    agent = Agent.objects.create(
        name="Pirate", model="qwen2.5", system_prompt="Talk like a pirate.", tools=[]
    )

    response = query(client_for(alice), prompt="hello", agentId=str(agent.pk), maxTokens=7)

    assert response.json()["model"] == "qwen2.5"
    (request,) = ollama_emulator_settings.requests()
    assert request["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert request["tools"] == [] and request["options"]["num_predict"] == 7


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "VALIDATION_ERROR"),
        ({"prompt": "hi", "temperature": 9}, 400, "VALIDATION_ERROR"),
        ({"prompt": "hi", "agentId": "6f1c1b2e-1111-4a4a-8b8b-123456789abc"}, 400,
         "VALIDATION_ERROR"),
        ({"prompt": "hi", "sessionId": "6f1c1b2e-1111-4a4a-8b8b-123456789abc"}, 404, "NOT_FOUND"),
        ({"prompt": "hi", "model": "nope"}, 400, "INVALID_MODEL"),
    ],
)  # fmt: skip
def test_a_refused_query(client_for, alice, ollama_emulator_settings, body, status, code):
    response = query(client_for(alice), **body)

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_a_query_about_someone_elses_session_is_forbidden(
    client_for, carol, room, ollama_emulator_settings
):
    response = query(client_for(carol), prompt="spy", sessionId=str(room.pk))

    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")
    assert ollama_emulator_settings.requests() == []


def test_a_query_needs_credentials(client_for, ollama_emulator_settings):
    assert query(client_for(None), prompt="hi").status_code == 401


def test_a_query_with_ollama_down_is_a_503(client_for, alice, ollama_down):
    response = query(client_for(alice), prompt="hi")

    assert (response.status_code, response.json()["code"]) == (503, "LLM_UNAVAILABLE")


def test_a_query_takes_a_stream_slot(client_for, alice, ollama_emulator_settings, settings):
    settings.MAX_CONCURRENT_STREAMS = 0

    response = query(client_for(alice), prompt="hi")

    assert (response.status_code, response.json()["code"]) == (429, "STREAM_LIMIT")


def test_a_query_spends_the_stream_request_budget_of_the_websocket_doors(
    client_for, alice, ollama_emulator_settings
):
    for _ in range(rule_for("stream:request").limit):
        async_to_sync(throttle_check)(user_id=alice.pk, event="stream:request")

    response = query(client_for(alice), prompt="hi")

    assert (response.status_code, response.json()["code"]) == (429, "RATE_LIMITED")
    assert int(response["Retry-After"]) >= 1
    assert ollama_emulator_settings.requests() == []


# -- models ----------------------------------------------------------------------------------


def test_models_are_the_ollama_servers(client_for, alice, ollama_emulator_settings, settings):
    ollama_emulator_settings.configure(models=["llama3.2", "mistral:7b"])

    response = client_for(alice).get("/api/llm/models")

    assert response.status_code == 200
    body = response.json()
    assert [m["name"] for m in body["models"]] == ["llama3.2:latest", "mistral:7b"]
    assert body["models"][0]["family"] == "llama"
    assert body["defaultModel"] == tagged(settings.OLLAMA_MODEL)
    assert client_for(alice).get("/api/llm/models/").status_code == 200


def test_models_name_tags_as_ollama_does(client_for, alice, ollama_emulator_settings, settings):
    settings.OLLAMA_MODEL = "llama3.2"
    ollama_emulator_settings.configure(models=["llama3.2", "llama3.2:latest", "qwen2.5"])

    body = client_for(alice).get("/api/llm/models").json()

    assert body["defaultModel"] == "llama3.2:latest"
    assert [m["name"] for m in body["models"]] == ["llama3.2:latest", "qwen2.5:latest"]


def test_models_with_ollama_down_is_a_503_naming_its_address(client_for, alice, ollama_down):
    response = client_for(alice).get("/api/llm/models")

    assert response.status_code == 503
    error = response.json()
    assert error["code"] == "LLM_UNAVAILABLE" and ollama_down in error["message"]


def test_models_need_credentials(client_for, ollama_emulator_settings):
    assert client_for(None).get("/api/llm/models").status_code == 401
