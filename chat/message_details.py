"""Messages loaded with everything ``MessageSerializer`` renders: the author, the reactions
and the attachments, in three statements for any number of messages (the page, then each
relation for the page's ids).

The author comes with its id and username only: that is all a message renders of it, and
the other columns of ``accounts_user`` (the password hash among them) were most of the
bytes of each row.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Attachment, Message, Reaction

# Oldest first, as the serializers list them (and as both models' Meta.ordering say).
DETAIL_ORDER = ("created_at", "id")

# Every column of a message: ``only`` below defers the author's, not these. A column added to
# ``Message`` is added here (tests/chat/test_message_details.py fails until it is).
_MESSAGE_FIELDS = [
    "id", "session", "seq", "author", "agent_id", "role", "content", "metadata", "tokens",
    "parent", "reply_count", "is_edited", "edited_at", "is_deleted", "deleted_at",
    "is_flagged", "client_id", "created_at", "updated_at",
]  # fmt: skip


def messages_with_details(queryset: QuerySet[Message]) -> list[Message]:
    """The messages of ``queryset`` (sliced already if it should be), in its order, each
    with ``author``, and with its reactions and attachments as the plain lists
    ``reaction_list`` and ``attachment_list``."""
    return list(
        queryset.select_related("author")
        .only(*_MESSAGE_FIELDS, "author__username")
        .prefetch_related(
            # ``to_attr`` keeps plain lists: a plain ``prefetch_related`` would give every
            # message a queryset of its own per relation.
            Prefetch(
                "reactions",
                queryset=Reaction.objects.order_by(*DETAIL_ORDER),
                to_attr="reaction_list",
            ),
            Prefetch(
                "attachments",
                queryset=Attachment.objects.order_by(*DETAIL_ORDER),
                to_attr="attachment_list",
            ),
        )
    )
