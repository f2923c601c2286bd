"""A stored full-text vector of each message's content, on PostgreSQL only, and the GIN index
``message_content_fts`` rebuilt on it.

The index of migration 0002 was on the expression ``to_tsvector('simple', content)``: the
planner can read matches from it, but any plan that meets the rows another way (a session's
newest messages, in ``seq`` order, until the 1,000th match) parses each row's text again,
which was most of a search for a common word (docs/benchmarks.md). A generated column keeps
the vector beside the text, written once by PostgreSQL on insert and on every update of
``content``; the model does not declare it, so Django never writes it and SQLite, which has
no ``tsvector``, searches as before (``chat.search``).

Adding the column rewrites the table once (about a minute for a million messages).
"""

from django.db import migrations

FORWARD = [
    "ALTER TABLE chat_message ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    "(to_tsvector('simple'::regconfig, COALESCE(content, ''))) STORED",
    "DROP INDEX IF EXISTS message_content_fts",
    "CREATE INDEX message_content_fts ON chat_message USING gin (search_vector)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS message_content_fts",
    "ALTER TABLE chat_message DROP COLUMN search_vector",
    "CREATE INDEX message_content_fts ON chat_message USING gin "
    "(to_tsvector('simple'::regconfig, COALESCE(content, '')))",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_chatsession_message_count")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
