"""Messages loaded with everything ``MessageSerializer`` renders: the author, the reactions
and the attachments.

On PostgreSQL that is one statement for any number of messages: each message row carries
its reactions and its attachments as two JSON arrays, built by correlated subqueries that
read the relations' ``message_id`` indexes, and turned back into model instances here. A
``prefetch_related`` takes three statements for a page (the page, then each relation for
the page's ids), and its machinery, more than the rows, was most of a history page's time
(docs/benchmarks.md). SQLite, the embedded single-process default, keeps the prefetches:
its JSON aggregate has no ``ORDER BY`` before SQLite 3.44.

The author comes with its id and username only: that is all a message renders of it, and
the other columns of ``accounts_user`` (the password hash among them) were most of the
bytes of each row.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Expression, JSONField, Model, Prefetch, QuerySet

from .models import Attachment, Message, Reaction

# Oldest first, as the serializers list them (and as both models' Meta.ordering say).
DETAIL_ORDER = ("created_at", "id")


def messages_with_details(queryset: QuerySet[Message]) -> list[Message]:
    """The messages of ``queryset`` (sliced already if it should be), in its order, each
    with ``author``, and with its reactions and attachments as the plain lists
    ``reaction_list`` and ``attachment_list``."""
    message_fields = [field.name for field in Message._meta.concrete_fields]
    queryset = queryset.select_related("author").only(*message_fields, "author__username")
    if connection.vendor != "postgresql":
        return list(_prefetched(queryset))
    messages = list(
        queryset.annotate(reaction_rows=_REACTION_ROWS, attachment_rows=_ATTACHMENT_ROWS)
    )
    for message in messages:
        message.reaction_list = _instances(Reaction, message.reaction_rows)
        message.attachment_list = _instances(Attachment, message.attachment_rows)
    return messages


def _prefetched(queryset: QuerySet[Message]) -> QuerySet[Message]:
    # ``to_attr`` keeps plain lists: a plain ``prefetch_related`` would give every message
    # a queryset of its own per relation.
    return queryset.prefetch_related(
        Prefetch(
            "reactions", queryset=Reaction.objects.order_by(*DETAIL_ORDER), to_attr="reaction_list"
        ),
        Prefetch(
            "attachments",
            queryset=Attachment.objects.order_by(*DETAIL_ORDER),
            to_attr="attachment_list",
        ),
    )


class _RowsOf(Expression):
    """The outer message's rows of ``model`` (a table with a ``message`` foreign key),
    oldest first, as one JSON array of arrays of every column; NULL when there are none.

    Written as SQL from the model's metadata rather than as a ``Subquery``: the statement is
    the same for every page, and resolving and compiling two inner querysets cost a page of
    50 about 1 ms more (bench/history.py's database), more than PostgreSQL takes to run the
    whole statement. The outer table is named by the alias the compiling query gives it.
    """

    output_field = JSONField()

    def __init__(self, model: type[Model]):
        super().__init__()
        self.model = model

    def as_sql(self, compiler, connection):
        meta, quote = self.model._meta, connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
        order = ", ".join(quote(meta.get_field(name).column) for name in DETAIL_ORDER)
        message = quote(meta.get_field("message").column)
        outer = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        outer_id = f"{outer}.{quote(Message._meta.pk.column)}"
        sql = (
            f"(SELECT JSONB_AGG(JSONB_BUILD_ARRAY({columns}) ORDER BY {order}) "
            f"FROM {quote(meta.db_table)} WHERE {message} = {outer_id})"
        )
        return sql, []


_REACTION_ROWS = _RowsOf(Reaction)
_ATTACHMENT_ROWS = _RowsOf(Attachment)


def _instances(model: type[Model], rows: list[list] | None) -> list[Model]:
    """``model`` instances from the JSON arrays of ``_RowsOf``, as if read from the table:
    each value goes through its field's ``to_python`` (JSON gives UUIDs and times as
    strings)."""
    if not rows:
        return []
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    return [
        model.from_db(
            connection.alias, names, [f.to_python(v) for f, v in zip(fields, row, strict=True)]
        )
        for row in rows
    ]
