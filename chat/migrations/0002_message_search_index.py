"""A GIN index for full-text search of message content, on PostgreSQL only.

The expression matches what ``chat.selectors.message_search`` filters on, so the planner
uses it; SQLite has no GIN and searches with LIKE instead.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX = GinIndex(SearchVector("content", config="simple"), name="message_content_fts")


def add_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("chat", "Message"), INDEX)


def remove_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("chat", "Message"), INDEX)


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(add_index, remove_index)]
