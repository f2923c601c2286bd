"""``session_brief_for_member``: what a room stream's request reads of its session, with the
same answers as ``session_get_for_member`` for strangers and unknown sessions."""

import uuid

import pytest

from chat.selectors import session_brief_for_member
from chat.services.sessions import session_create
from chatproject.errors import DomainError
from llm.models import Agent

pytestmark = pytest.mark.django_db


def test_a_member_gets_the_sessions_id_and_agent(room, alice, bob):
    agent = Agent.objects.create(name="helper", model="llama3.2")
    room.agent_id = agent.pk
    room.save(update_fields=["agent_id"])
    solo = session_create(creator=alice, title="notes")

    brief = session_brief_for_member(user=bob, session_id=str(room.pk))

    assert (brief.id, brief.agent_id) == (room.pk, agent.pk)
    assert session_brief_for_member(user=alice, session_id=solo.pk).agent_id is None


@pytest.mark.parametrize("case", ["stranger", "unknown", "malformed"])
def test_strangers_and_unknown_sessions_are_refused(room, carol, case):
    session_id = {"stranger": room.pk, "unknown": uuid.uuid4(), "malformed": "nope"}[case]

    with pytest.raises(DomainError) as refused:
        session_brief_for_member(user=carol, session_id=session_id)

    assert refused.value.code == ("FORBIDDEN" if case == "stranger" else "NOT_FOUND")
