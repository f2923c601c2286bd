"""Creating, changing and deleting agents: staff only. Sessions and messages that name a
deleted agent keep working without it (their ``agent_id`` becomes null)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from chat.services.agents import agent_ids_clear
from chatproject.errors import forbidden, validation_error

from ..mention_target import ASSISTANT
from ..models import Agent
from ..selectors import agent_get

_FIELDS = {
    "name": "name",
    "model": "model",
    "system_prompt": "system_prompt",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "tools": "tools",
}


def _staff_only(user) -> None:
    if not user.is_staff:
        raise forbidden("Only staff can create, change or delete agents.")


def agent_name_check(name: str) -> None:
    """An agent's name is what an ``@`` mention of it says, so it can't be ``assistant``
    (the session's own assistant) nor a person's username."""
    if name.lower() == ASSISTANT or get_user_model().objects.filter(username__iexact=name).exists():
        raise validation_error(
            "That name belongs to a user or to the assistant.",
            {"name": ["A user or the assistant has this name."]},
        )


def _save(agent: Agent) -> Agent:
    agent_name_check(agent.name)
    if Agent.objects.filter(name=agent.name).exclude(pk=agent.pk).exists():
        raise validation_error("The name is taken.", {"name": ["An agent has this name."]})
    try:
        with transaction.atomic():
            agent.save()
    except IntegrityError as exc:
        # Two requests raced for the same name; the other one won.
        raise validation_error("The name is taken.", {"name": ["An agent has this name."]}) from exc
    return agent


def agent_create(*, user, data: dict) -> Agent:
    """A new agent from validated data (model field names)."""
    _staff_only(user)
    return _save(Agent(**{field: data[key] for key, field in _FIELDS.items() if key in data}))


def agent_update(*, user, agent_id, data: dict) -> Agent:
    """Change the given fields of an agent."""
    _staff_only(user)
    agent = agent_get(agent_id)
    for key, field in _FIELDS.items():
        if key in data:
            setattr(agent, field, data[key])
    return _save(agent)


def agent_delete(*, user, agent_id) -> None:
    _staff_only(user)
    agents_remove(agent_ids=[agent_get(agent_id).pk])


def agents_remove(*, agent_ids) -> None:
    """Delete agents (the admin's delete calls this too): chat names them by id only, so
    their ids are cleared from sessions and messages in the same transaction, as
    ``ON DELETE SET NULL`` did. Streams keep their rows (``Stream.agent`` is set null)."""
    agent_ids = list(agent_ids)
    with transaction.atomic():
        agent_ids_clear(agent_ids=agent_ids)
        Agent.objects.filter(pk__in=agent_ids).delete()
