"""Receipts become watermarks: ``Membership.last_delivered_seq`` beside ``last_seen_seq``,
and the per-message ``MessageReceipt`` rows go.

Each member's delivery watermark starts at the newest message of the session they had a
delivered (or seen) receipt for, and never below their read watermark (seen implies
delivered): one UPDATE over the memberships, before the receipts table is dropped. Going
back recreates an empty receipts table: the per-message times are not kept.
"""

from django.db import migrations, models
from django.db.models import F, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest


def fold_receipts(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    MessageReceipt = apps.get_model("chat", "MessageReceipt")
    newest_delivered = (
        MessageReceipt.objects.filter(
            Q(delivered_at__isnull=False) | Q(seen_at__isnull=False),
            user_id=OuterRef("user_id"),
            message__session_id=OuterRef("session_id"),
        )
        .order_by()
        .values("user_id")
        .annotate(seq=Max("message__seq"))
        .values("seq")
    )
    Membership.objects.update(
        last_delivered_seq=Greatest(
            F("last_seen_seq"), Coalesce(Subquery(newest_delivered), Value(0))
        )
    )


class Migration(migrations.Migration):
    dependencies = [("chat", "0005_agent_id_without_relation")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="last_delivered_seq",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.RunPython(fold_receipts, migrations.RunPython.noop),
        migrations.DeleteModel(name="MessageReceipt"),
    ]
