"""Who may do what in a session: the rules services check before they write."""

from __future__ import annotations

from chatproject.errors import DomainError, forbidden

from .models import Membership
from .selectors import NOT_A_MEMBER, session_get_for_member


def membership_require(*, user, session_id) -> Membership:
    """The caller's membership, or FORBIDDEN. The session is assumed to exist."""
    membership = Membership.objects.filter(session_id=session_id, user_id=user.pk).first()
    if membership is None:
        raise forbidden(NOT_A_MEMBER)
    return membership


def can_manage(*, user, membership: Membership | None) -> bool:
    """Owners, session admins and staff manage a session and moderate its messages."""
    if user.is_staff:
        return True
    return membership is not None and membership.role in (
        Membership.Role.OWNER,
        Membership.Role.ADMIN,
    )


def bots_refused(*, user, action: str) -> None:
    """FORBIDDEN for a bot: bots post into sessions people added them to, and never create
    sessions or change who is in one (``action`` says what was refused)."""
    if getattr(user, "is_bot", False):
        raise forbidden(f"Bots can't {action}.")


def sender_refusal(*, user, session_id) -> DomainError:
    """Why ``user`` may not write in the session: NOT_FOUND for an unknown one, else
    FORBIDDEN, as ``session_get_for_member`` answers."""
    session_get_for_member(user=user, session_id=session_id)
    return forbidden(NOT_A_MEMBER)
