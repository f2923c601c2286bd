"""Creating, changing and deleting sessions, and their membership."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from chatproject.errors import forbidden, not_found, validation_error

from ..events import SESSION_REMOVED_TYPE, tell_user_on_commit
from ..models import ChatSession, Membership
from ..permissions import bots_refused, can_manage, membership_require
from ..selectors import (
    membership_get,
    session_get,
    session_get_for_member,
    session_with_members,
)
from .agents import agent_id_check

User = get_user_model()


def session_create(*, creator, title: str, member_ids=(), agent_id=None) -> ChatSession:
    """A new session owned by ``creator``, with the named users as members."""
    bots_refused(user=creator, action="create sessions")
    agent_id_check(agent_id)
    wanted = {int(i) for i in member_ids} - {creator.pk}
    found = set(User.objects.filter(pk__in=wanted, is_active=True).values_list("pk", flat=True))
    if missing := sorted(wanted - found):
        raise validation_error("Unknown users.", {"memberIds": [f"No active user {missing}."]})
    with transaction.atomic():
        session = ChatSession.objects.create(title=title, created_by=creator, agent_id=agent_id)
        Membership.objects.bulk_create(
            [Membership(session=session, user=creator, role=Membership.Role.OWNER)]
            + [Membership(session=session, user_id=pk) for pk in sorted(found)]
        )
    return session_with_members(session.pk)


def _session_to_manage(*, user, session_id) -> tuple[ChatSession, Membership | None]:
    """The session and the caller's membership. Staff moderate sessions they are not in."""
    if user.is_staff:
        session = session_get(session_id=session_id)
        return session, membership_get(user=user, session_id=session.pk)
    session = session_get_for_member(user=user, session_id=session_id)
    return session, membership_require(user=user, session_id=session.pk)


def session_update(*, user, session_id, data: dict) -> ChatSession:
    """Change the title or the default agent: owners, session admins and staff."""
    bots_refused(user=user, action="change sessions")
    session, membership = _session_to_manage(user=user, session_id=session_id)
    if not can_manage(user=user, membership=membership):
        raise forbidden("Only the session's owner or admins can change it.")
    fields = []
    if "title" in data:
        session.title = data["title"]
        fields.append("title")
    if "agentId" in data:
        session.agent_id = agent_id_check(data["agentId"])
        fields.append("agent_id")
    if fields:
        session.save(update_fields=fields)
    return session_with_members(session.pk)


def session_delete(*, user, session_id) -> None:
    """Delete a session and everything in it: its owner or staff only."""
    bots_refused(user=user, action="delete sessions")
    session, membership = _session_to_manage(user=user, session_id=session_id)
    if not (user.is_staff or membership.role == Membership.Role.OWNER):
        raise forbidden("Only the session's owner can delete it.")
    session.delete()


def member_add(*, user, session_id, user_id: int) -> tuple[ChatSession, bool]:
    """Any member may add an active user (as in Slack); adding a member again is a no-op."""
    bots_refused(user=user, action="manage members")
    session = session_get_for_member(user=user, session_id=session_id)
    if not User.objects.filter(pk=user_id, is_active=True).exists():
        raise validation_error("Unknown user.", {"userId": ["No active user has this id."]})
    _, created = Membership.objects.get_or_create(session=session, user_id=user_id)
    return session_with_members(session.pk), created


def member_remove(*, user, session_id, user_id: int) -> None:
    """A member may leave; owners, session admins and staff may remove others. The owner
    can't leave their own session (delete it instead), so it always has one."""
    bots_refused(user=user, action="manage members")
    session, membership = _session_to_manage(user=user, session_id=session_id)
    target = Membership.objects.filter(session=session, user_id=user_id).first()
    if target is None:
        raise not_found("Member")
    if user_id != user.pk and not can_manage(user=user, membership=membership):
        raise forbidden("Only the session's owner or admins can remove other members.")
    if target.role == Membership.Role.OWNER:
        raise forbidden("The owner can't be removed from their session.")
    with transaction.atomic():
        target.delete()
        # Sockets that joined the session stop receiving it (they are in its group).
        tell_user_on_commit(user_id, {"type": SESSION_REMOVED_TYPE, "sessionId": str(session.pk)})
