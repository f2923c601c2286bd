"""``/api/llm/agents``: any signed-in user reads, staff write; unknown tools are refused."""

from __future__ import annotations

import pytest

from chat.services.sessions import session_create
from llm.models import Agent

pytestmark = pytest.mark.django_db

BODY = {
    "name": "helper",
    "model": "qwen2.5",
    "systemPrompt": "You help.",
    "temperature": 0.2,
    "maxTokens": 256,
    "tools": ["calculator", "search_messages"],
}


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def agent():
    return Agent.objects.create(name="existing", model="llama3.2", tools=["calculator"])


def test_staff_create_an_agent_and_get_it_back_in_camel_case(client_for, staff):
    created = client_for(staff).post("/api/llm/agents", BODY, format="json")

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body == {"id": body["id"], **BODY}
    assert Agent.objects.get(pk=body["id"]).system_prompt == "You help."


def test_members_read_agents_with_and_without_a_trailing_slash(client_for, alice, agent):
    listed = client_for(alice).get("/api/llm/agents/")
    one = client_for(alice).get(f"/api/llm/agents/{agent.pk}")

    assert listed.status_code == 200 and [a["name"] for a in listed.json()] == ["existing"]
    assert one.json() == {
        "id": str(agent.pk), "name": "existing", "model": "llama3.2", "systemPrompt": "",
        "temperature": None, "maxTokens": None, "tools": ["calculator"],
    }  # fmt: skip


def test_reading_needs_credentials(client_for, agent):
    assert client_for().get("/api/llm/agents").status_code == 401


def test_only_staff_write(client_for, alice, agent):
    client = client_for(alice)
    assert client.post("/api/llm/agents", BODY, format="json").status_code == 403
    assert (
        client.patch(f"/api/llm/agents/{agent.pk}", {"name": "x"}, format="json").status_code == 403
    )
    assert client.delete(f"/api/llm/agents/{agent.pk}").status_code == 403
    assert Agent.objects.get(pk=agent.pk).name == "existing"


@pytest.mark.parametrize(
    "change",
    [
        {"tools": ["calculator", "shell"]},
        {"temperature": 3},
        {"maxTokens": 0},
        {"name": ""},
        {"name": "existing"},
    ],
)
def test_invalid_agents_are_refused_with_400(client_for, staff, agent, change):
    response = client_for(staff).post("/api/llm/agents", {**BODY, **change}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert set(response.json()["details"]) == set(change)


def test_an_unknown_tool_names_the_known_ones(client_for, staff):
    response = client_for(staff).post(
        "/api/llm/agents", {**BODY, "tools": ["shell"]}, format="json"
    )
    assert "calculator" in str(response.json()["details"]["tools"])


def test_staff_patch_some_fields_and_delete(client_for, staff, agent, alice):
    room = session_create(creator=alice, title="r", agent_id=agent.pk)
    client = client_for(staff)

    patched = client.patch(
        f"/api/llm/agents/{agent.pk}/", {"temperature": 0.5, "tools": []}, format="json"
    )
    assert patched.status_code == 200
    assert (patched.json()["temperature"], patched.json()["tools"], patched.json()["name"]) == (
        0.5, [], "existing",
    )  # fmt: skip

    assert client.delete(f"/api/llm/agents/{agent.pk}").status_code == 204
    assert client.get(f"/api/llm/agents/{agent.pk}").status_code == 404
    room.refresh_from_db()
    assert room.agent_id is None


def test_an_unknown_agent_is_404(client_for, staff):
    missing = "00000000-0000-0000-0000-000000000000"
    assert client_for(staff).get(f"/api/llm/agents/{missing}").status_code == 404
    assert (
        client_for(staff).patch(f"/api/llm/agents/{missing}", {}, format="json").status_code == 404
    )
