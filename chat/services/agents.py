"""Chat's side of agents. Sessions and messages name an agent by id only (``agent_id``):
the LLM app owns agents and answers through ``chat.extensions``, so chat never imports it."""

from __future__ import annotations

from django.db import transaction

from chatproject.errors import validation_error

from ..extensions import agent_exists
from ..models import ChatSession, Message


def agent_id_check(agent_id):
    """``agent_id`` if it names an agent (or is None); a validation error on ``agentId``
    otherwise."""
    if agent_id is not None and not agent_exists(agent_id):
        raise validation_error("No such agent.", {"agentId": ["No agent has this id."]})
    return agent_id


def agent_ids_clear(*, agent_ids) -> None:
    """Agents are being deleted: sessions and messages that name them keep working without
    (their ``agent_id`` becomes null, as ``ON DELETE SET NULL`` did). Called by the app that
    deletes them, in the same transaction as the delete."""
    agent_ids = list(agent_ids)
    with transaction.atomic():
        ChatSession.objects.filter(agent_id__in=agent_ids).update(agent_id=None)
        Message.objects.filter(agent_id__in=agent_ids).update(agent_id=None)
