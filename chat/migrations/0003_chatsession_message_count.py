"""``ChatSession.message_count``: the session's top-level messages, kept by ``seq_allocate``
from now on and counted once here for the messages already stored.

Tombstones count, as history lists them. The backfill is one ``UPDATE`` with a correlated
``COUNT(*)`` per session (the ``message_history`` index covers it).
"""

from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def backfill(apps, schema_editor):
    ChatSession = apps.get_model("chat", "ChatSession")
    Message = apps.get_model("chat", "Message")
    top_level = (
        Message.objects.filter(session=OuterRef("pk"), parent=None)
        .order_by()
        .values("session")
        .annotate(n=Count("pk"))
        .values("n")
    )
    ChatSession.objects.update(message_count=Coalesce(Subquery(top_level), 0))


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_message_search_index")]

    operations = [
        migrations.AddField(
            model_name="chatsession",
            name="message_count",
            field=models.PositiveBigIntegerField(
                default=0,
                help_text="Top-level messages, tombstones included (the history's total).",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
