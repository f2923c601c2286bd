"""Search on PostgreSQL uses the GIN index ``message_content_fts``: the selector's text
expression must stay the one the migration indexed, or every search scans the table."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message
from chat.selectors import message_search
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db

ROWS = 5000


def test_search_queries_are_planned_on_the_full_text_index(room, alice):
    if not on_postgres():
        pytest.skip("needs PostgreSQL: the GIN index exists only there")
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
    searches = [q["sql"] for q in captured.captured_queries if "websearch_to_tsquery" in q["sql"]]
    assert len(searches) == 2, "the count and the page"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in searches:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "message_content_fts" in plan, plan
