"""Deleting an agent: chat names agents by id only, so the LLM app clears the ids of the
sessions and messages that named it (as ``ON DELETE SET NULL`` did while they were foreign
keys), whichever door deletes it: the API's service or the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import ChatSession, Message
from chat.services.assistant import assistant_message_create
from chat.services.sessions import session_create
from llm.models import Agent
from llm.services.agents import agent_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def named(alice):
    """Two agents, each the default of a session that has an answer written by it."""
    rows = {}
    for name in ("gone", "kept"):
        agent = Agent.objects.create(name=name)
        room = session_create(creator=alice, title=name, agent_id=agent.pk)
        answer = assistant_message_create(session_id=room.pk, agent_id=agent.pk)
        rows[name] = (agent, room, answer)
    return rows


def agent_ids(rows) -> list:
    _, room, answer = rows
    return [
        ChatSession.objects.get(pk=room.pk).agent_id,
        Message.objects.get(pk=answer.pk).agent_id,
    ]


def test_deleting_an_agent_clears_it_from_its_sessions_and_messages_only(staff, named):
    agent_delete(user=staff, agent_id=named["gone"][0].pk)

    assert not Agent.objects.filter(name="gone").exists()
    assert agent_ids(named["gone"]) == [None, None]
    assert agent_ids(named["kept"]) == [named["kept"][0].pk] * 2


def test_the_admin_clears_them_too_one_agent_or_many(client, staff, named):
    client.force_login(staff)
    gone = named["gone"][0]

    one = client.post(reverse("admin:llm_agent_delete", args=[gone.pk]), {"post": "yes"})
    assert one.status_code == 302
    assert agent_ids(named["gone"]) == [None, None]

    kept = named["kept"][0]
    many = client.post(
        reverse("admin:llm_agent_changelist"),
        {"action": "delete_selected", "_selected_action": [str(kept.pk)], "post": "yes"},
    )
    assert many.status_code == 302
    assert not Agent.objects.exists()
    assert agent_ids(named["kept"]) == [None, None]
