"""Messages loaded with everything ``MessageSerializer`` renders: the author, the reactions,
the attachments and the pin.

Every read that renders messages starts from ``detailed_messages()``, filters, orders and
slices it, and hands it to ``messages_with_details``. On PostgreSQL that is one statement
for any number of messages: each message's reactions and attachments ride along in its row
as an array of their rows (an ``ARRAY`` of a correlated subquery, ``ArraySubquery``), turned
back into the model instances a read of their tables gives. SQLite has no arrays: there each
relation is read in one more statement for the page's message ids (``Prefetch(to_attr=)``).
Both give the same instances, so everything after this module is shared.

Building and compiling a query is most of a history page's time in Python
(docs/benchmarks.md): the annotated base queryset is built once per process and cloned by
each read (a ``QuerySet`` is never changed by filtering it), so a read pays for its own
filters only.

The author comes with its id, username and ``is_bot`` only: that is all a message renders of
it (``isBot``), and
the other columns of ``accounts_user`` (the password hash among them) were most of the
bytes of each row. The pin (and who pinned) rides along the same way, joined in the
message's own statement (``loaded_pin``).
"""

from __future__ import annotations

import functools

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import F, Func, JSONField, Model, OuterRef, Prefetch, QuerySet

from .models import Attachment, Message, Pin, Reaction

# Oldest first, as the serializers list them (and as both models' Meta.ordering say).
DETAIL_ORDER = ("created_at", "id")

# Every column of a message: ``only`` below defers the author's, not these. A column added to
# ``Message`` is added here (tests/chat/test_message_details.py fails until it is).
_MESSAGE_FIELDS = [
    "id", "session", "seq", "author", "agent_id", "role", "content", "metadata", "tokens",
    "parent", "reply_count", "is_edited", "edited_at", "is_deleted", "deleted_at",
    "is_flagged", "client_id", "created_at", "updated_at",
]  # fmt: skip

# What a message renders of its pin: when, and who pinned it.
_PIN_FIELDS = ("pin__pinned_at", "pin__pinned_by__username")

# The message's attribute holding each relation's instances: the relation, and its model.
_DETAILS = {
    "reaction_list": ("reactions", Reaction),
    "attachment_list": ("attachments", Attachment),
}


def detailed_messages() -> QuerySet[Message]:
    """All messages, loaded as ``messages_with_details`` needs them: filter, order and slice
    this, then pass it there."""
    return _detailed(connection.vendor == "postgresql").all()


@functools.cache
def _detailed(arrays: bool) -> QuerySet[Message]:
    messages = Message.objects.select_related("author", "pin__pinned_by").only(
        *_MESSAGE_FIELDS, "author__username", "author__is_bot", *_PIN_FIELDS
    )
    if not arrays:
        # ``to_attr`` keeps plain lists: a plain ``prefetch_related`` would give every
        # message a queryset of its own per relation.
        return messages.prefetch_related(
            *(
                Prefetch(relation, queryset=model.objects.order_by(*DETAIL_ORDER), to_attr=attr)
                for attr, (relation, model) in _DETAILS.items()
            )
        )
    return messages.annotate(
        **{f"{attr}_rows": _detail_rows(model) for attr, (_, model) in _DETAILS.items()}
    )


def _detail_rows(model: type[Model]) -> ArraySubquery:
    """The outer message's rows of ``model``, oldest first, each a JSON array of its columns
    in ``concrete_fields`` order (an array, not an object: no key to compile per column)."""
    columns = [F(field.attname) for field in model._meta.concrete_fields]
    row = Func(*columns, function="jsonb_build_array", output_field=JSONField())
    rows = model.objects.filter(message=OuterRef("pk")).order_by(*DETAIL_ORDER)
    return ArraySubquery(rows.values(row=row))


def messages_with_details(queryset: QuerySet[Message]) -> list[Message]:
    """The messages of ``queryset`` (from ``detailed_messages()``, sliced already if it
    should be), in its order, each with ``author``, and with its reactions and attachments
    as the plain lists ``reaction_list`` and ``attachment_list``."""
    messages = list(queryset)
    if connection.vendor != "postgresql":
        return messages
    for message in messages:
        state = vars(message)
        for attr, (_, model) in _DETAILS.items():
            state[attr] = _instances(model, state.pop(f"{attr}_rows"), queryset.db)
    return messages


def _instances(model: type[Model], rows: list[list], db: str) -> list[Model]:
    """``rows`` (``_detail_rows``) as the instances a read of the table gives: each value
    back to its field's Python type (JSON has no UUID or datetime)."""
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    return [
        model.from_db(db, names, [f.to_python(value) for f, value in zip(fields, row, strict=True)])
        for row in rows
    ]


def loaded_pin(message: Message) -> Pin | None:
    """The message's pin as ``detailed_messages`` loaded it, or None. A message not loaded
    from there (one just created, which no one has pinned yet) has none: this never reads
    the database, so rendering a new message stays free of queries."""
    if not Message.pin.is_cached(message):
        return None
    # A message with no pin has None cached, which the accessor raises as
    # ``RelatedObjectDoesNotExist`` (an ``AttributeError``).
    return getattr(message, "pin", None)
