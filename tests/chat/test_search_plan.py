"""Search on PostgreSQL reads the stored vector ``chat_message.search_vector`` through the
GIN index ``message_content_fts`` (migration 0004): it never parses message text at query
time, and the column follows every write of ``content``."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message
from chat.selectors import message_search
from chat.services.messages import message_edit, message_send

pytestmark = pytest.mark.django_db

ROWS = 5000

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the stored vector exists on PostgreSQL only"
)


def searches_of(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "websearch_to_tsquery" in q["sql"]]


@needs_postgres
def test_search_queries_read_the_stored_vector_through_the_full_text_index(room, alice):
    # One big session, so that its session_id is no shortcut and only the text index helps.
    Message.objects.bulk_create(
        Message(session=room, seq=i, author=alice, content="needle" if i % 500 == 0 else f"hay {i}")
        for i in range(1, ROWS + 1)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_message")

    with CaptureQueriesContext(connection) as captured:
        page = message_search(session=room, query="needle", limit=20)

    assert page.total == ROWS // 500
    searches = searches_of(captured)
    assert len(searches) == 2, "the count and the page"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in searches:
            assert '"search_vector" @@' in sql and "to_tsvector" not in sql, sql
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "message_content_fts" in plan, plan


@needs_postgres
def test_the_full_text_index_is_on_the_stored_column():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_content_fts'")
        (definition,) = cursor.fetchone()

    assert definition.endswith("USING gin (search_vector)")


def test_search_finds_a_message_by_its_edited_text_only(room, alice):
    """On PostgreSQL the generated column is rewritten with the content; SQLite reads the
    content itself. Either way the same results."""
    message = message_send(author=alice, session_id=room.pk, content="before the edit")
    message_edit(user=alice, message_id=message.pk, content="after it")

    assert message_search(session=room, query="before").total == 0
    found = message_search(session=room, query="after")
    assert [m.pk for m in found.messages] == [message.pk]


def test_search_counts_the_newest_matches_in_seq_order(room, alice):
    for text in ["word one", "no", "word two", "word three"]:
        message_send(author=alice, session_id=room.pk, content=text)

    page = message_search(session=room, query="word", limit=2, offset=1)

    assert page.total == 3
    assert [m.content for m in page.messages] == ["word two", "word one"]
