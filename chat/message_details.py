"""Messages loaded with everything ``MessageSerializer`` renders: the author, the reactions,
the attachments, the pin and the mentions.

Every read that renders messages starts from ``detailed_messages()``, filters, orders and
slices it, and hands it to ``messages_with_details``. On PostgreSQL that is one statement
for any number of messages: each message's reactions and attachments ride along in its row
as an array of their rows (an ``ARRAY`` of a correlated subquery, ``ArraySubquery``), turned
back into the model instances a read of their tables gives. SQLite has no arrays: there each
relation is read in one more statement for the page's message ids (``Prefetch(to_attr=)``).
Both give the same instances, so everything after this module is shared. Mentions are
rendered as they are read (``mention_list``: ``[{user, offset, length}]``): on PostgreSQL
an array in the row too, on SQLite one more statement for the page.

Building and compiling a query is most of a history page's time in Python
(docs/benchmarks.md): the annotated base queryset is built once per process and cloned by
each read (a ``QuerySet`` is never changed by filtering it), so a read pays for its own
filters only.

The author comes with its id, username and ``is_bot`` only: that is all a message renders of
it (``isBot``), and the other columns of ``accounts_user`` (the password hash among them)
were most of the bytes of each row. The pin (and who pinned) rides along the same way, joined in the
message's own statement (``loaded_pin``).
"""

from __future__ import annotations

import functools

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import F, Func, JSONField, Model, OuterRef, Prefetch, QuerySet

from .models import Attachment, Mention, Message, Pin, Reaction

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
        **{f"{attr}_rows": _detail_rows(model) for attr, (_, model) in _DETAILS.items()},
        mention_rows=ArraySubquery(_mentions(Mention.objects.filter(message=OuterRef("pk")))),
    )


# A mention as ``[user id, username, offset, length]``.
_MENTION_COLUMNS = ("user_id", "user__username", "offset", "length")


def _mentions(queryset: QuerySet[Mention]) -> QuerySet:
    """The mentions as rows of ``_MENTION_COLUMNS`` in text order: on PostgreSQL each one
    JSON array, for ``ArraySubquery``."""
    row = Func(*map(F, _MENTION_COLUMNS), function="jsonb_build_array", output_field=JSONField())
    return queryset.order_by("offset").values(row=row)


def _mention_list(rows) -> list[dict]:
    return [
        {"user": {"id": user_id, "username": username}, "offset": offset, "length": length}
        for user_id, username, offset, length in rows
    ]


def _detail_rows(model: type[Model]) -> ArraySubquery:
    """The outer message's rows of ``model``, oldest first, each a JSON array of its columns
    in ``concrete_fields`` order (an array, not an object: no key to compile per column)."""
    columns = [F(field.attname) for field in model._meta.concrete_fields]
    row = Func(*columns, function="jsonb_build_array", output_field=JSONField())
    rows = model.objects.filter(message=OuterRef("pk")).order_by(*DETAIL_ORDER)
    return ArraySubquery(rows.values(row=row))


def messages_with_details(queryset: QuerySet[Message]) -> list[Message]:
    """The messages of ``queryset`` (from ``detailed_messages()``, sliced already if it
    should be), in its order, each with ``author``, with its reactions and attachments as
    the plain lists ``reaction_list`` and ``attachment_list``, and its mentions rendered as
    ``mention_list``."""
    messages = list(queryset)
    if connection.vendor != "postgresql":
        _mentions_read(messages)
        return messages
    for message in messages:
        state = vars(message)
        for attr, (_, model) in _DETAILS.items():
            state[attr] = _instances(model, state.pop(f"{attr}_rows"), queryset.db)
        state["mention_list"] = _mention_list(state.pop("mention_rows"))
    return messages


def _mentions_read(messages: list[Message]) -> None:
    """The messages' mentions in one statement (none for no messages)."""
    rows: dict = {message.pk: [] for message in messages}
    if rows:
        found = Mention.objects.filter(message_id__in=list(rows)).order_by("offset")
        for message_id, *row in found.values_list("message_id", *_MENTION_COLUMNS):
            rows[message_id].append(row)
    for message in messages:
        message.mention_list = _mention_list(rows[message.pk])


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
