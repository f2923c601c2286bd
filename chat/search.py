"""Which messages match a search: full-text on PostgreSQL, on the stored vector; every word
as a case-insensitive substring on SQLite.

On PostgreSQL, migration 0004 gives ``chat_message`` a generated ``tsvector`` column,
``search_vector``, with the GIN index ``message_content_fts`` on it. The model does not
declare the column (SQLite has no such type, and Django must never write it), so queries
name it through ``StoredSearchVector``.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Expression, Q, QuerySet

from .models import Message

# The text search configuration the column is built with (migration 0004): "simple" only
# lower-cases words, so a search finds the word typed, in any language.
CONFIG = "simple"


class StoredSearchVector(Expression):
    """``chat_message.search_vector``, the stored vector, as an expression to filter on.

    Compiled against the query's own alias for the table, so it stays right when the
    queryset becomes a subquery (where Django renames the table ``U0``).
    """

    def __init__(self):
        from django.contrib.postgres.search import SearchVectorField

        super().__init__(output_field=SearchVectorField())
        # ``SearchVectorExact`` reads it to parse a plain string query with the same config.
        self.config = CONFIG

    def as_sql(self, compiler, connection):
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return f"{table}.{connection.ops.quote_name('search_vector')}", []


def search_query(query: str):
    """``query`` as a tsquery, read as people type into a search box (``websearch``)."""
    from django.contrib.postgres.search import SearchQuery

    return SearchQuery(query, config=CONFIG, search_type="websearch")


def messages_matching(queryset: QuerySet[Message], query: str) -> QuerySet[Message]:
    """The messages of ``queryset`` whose content matches ``query``."""
    if connection.vendor == "postgresql":
        # ``alias`` filters on the column without selecting it: a page has no use for it.
        return queryset.alias(search=StoredSearchVector()).filter(search=search_query(query))
    condition = Q()
    for word in query.split():
        condition &= Q(content__icontains=word)
    return queryset.filter(condition)
