"""Migration ``chat.0006``: each member's delivered receipts fold into their new delivery
watermark (never below their read watermark), on SQLite and PostgreSQL alike, and the
per-message receipts table goes."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("chat", "0005_agent_id_without_relation")]
AFTER = [("chat", "0006_membership_last_delivered_seq")]


def migrate(targets):
    """Migrate the test database to ``targets``; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def before():
    """The models before the migration; the database is migrated to the end afterwards."""
    yield migrate(BEFORE)
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())


def test_delivered_receipts_become_the_delivery_watermark(before):
    User = before.get_model("accounts", "User")
    Session = before.get_model("chat", "ChatSession")
    Membership = before.get_model("chat", "Membership")
    Message = before.get_model("chat", "Message")
    Receipt = before.get_model("chat", "MessageReceipt")
    alice, bob, carol, dave = (User.objects.create(username=n) for n in "abcd")
    room, other = Session.objects.create(title="room"), Session.objects.create(title="other")
    messages = [Message.objects.create(session=room, seq=n, author=alice) for n in (1, 2, 3, 4)]
    elsewhere = Message.objects.create(session=other, seq=9, author=alice)
    now = timezone.now()
    Membership.objects.create(session=room, user=alice)
    # bob: delivered up to 3, seen up to 1.
    Membership.objects.create(session=room, user=bob, last_seen_seq=1)
    Receipt.objects.create(message=messages[0], user=bob, delivered_at=now, seen_at=now)
    Receipt.objects.create(message=messages[2], user=bob, delivered_at=now)
    # carol: read up to 4 with no receipt rows left: delivered follows seen.
    Membership.objects.create(session=room, user=carol, last_seen_seq=4)
    Receipt.objects.create(message=messages[1], user=carol, delivered_at=now)
    # dave: a receipt in another session does not count in this one.
    Membership.objects.create(session=room, user=dave)
    Membership.objects.create(session=other, user=dave)
    Receipt.objects.create(message=elsewhere, user=dave, delivered_at=now)

    after = migrate(AFTER)

    rows = after.get_model("chat", "Membership").objects.values_list(
        "session__title", "user__username", "last_delivered_seq", "last_seen_seq"
    )
    assert sorted(rows) == [
        ("other", "d", 9, 0),
        ("room", "a", 0, 0),
        ("room", "b", 3, 1),
        ("room", "c", 4, 4),
        ("room", "d", 0, 0),
    ]
    assert "chat_messagereceipt" not in connection.introspection.table_names()
