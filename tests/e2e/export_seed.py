"""Set-up of ``test_export_memory_e2e``: a session of many messages, written in bulk.

Run as ``python -m tests.e2e.export_seed OWNER_ID COUNT`` in a worker's environment (its
database and settings); prints the new session's id. A hundred thousand messages take
seconds this way, where the API would take many minutes. What it writes is what sends
write, counters included (``last_seq``, ``message_count``, ``reply_count``), in a shape an
export has to get right: threads, answers with a model, tombstones, link attachments.
"""

from __future__ import annotations

import sys

import django

BATCH = 5000
# Of each ten messages: seven roots, then three replies to the first of them.
BLOCK_ROOTS = 7
FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 2


def seed(owner_id: int, count: int) -> str:
    from django.db import connection, transaction
    from django.utils import timezone

    from chat.models import Attachment, ChatSession, Membership, Message

    now = timezone.now()
    with transaction.atomic():
        session = ChatSession.objects.create(title="export e2e", created_by_id=owner_id)
        Membership.objects.create(session=session, user_id=owner_id, role="owner")
        rows: list[Message] = []
        block_root = None
        for seq in range(1, count + 1):
            position = (seq - 1) % 10
            parent = block_root if position >= BLOCK_ROOTS and block_root is not None else None
            assistant = seq % 50 == 2
            message = Message(
                session=session,
                seq=seq,
                author_id=None if assistant else owner_id,
                role="assistant" if assistant else "user",
                content=f"message {seq}: {FILLER}",
                metadata={"model": "llama3.2"} if assistant else {},
                parent=parent,
                is_deleted=seq % 100 == 1,
                deleted_at=now if seq % 100 == 1 else None,
            )
            if position == 0:
                block_root = message
            if parent is not None:
                parent.reply_count += 1
            rows.append(message)
        Message.objects.bulk_create(rows, batch_size=BATCH)
        Attachment.objects.bulk_create(
            [
                Attachment(
                    message=row,
                    file_name=f"file-{row.seq}.pdf",
                    file_url=f"https://example.com/{row.seq}.pdf",
                    mime_type="application/pdf",
                    file_size=1000,
                )
                for row in rows[499::1000]
            ]
        )
        roots = sum(1 for row in rows if row.parent is None)
        ChatSession.objects.filter(pk=session.pk).update(
            last_seq=count, message_count=roots, last_message_at=now
        )
    if connection.vendor == "postgresql":
        # What autovacuum does after a load this size, within a minute: without statistics
        # the planner takes the fresh table for empty and sorts a session to read a page.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE chat_message")
    return str(session.pk)


def main() -> None:
    owner_id, count = map(int, sys.argv[1:3])
    django.setup()
    print(seed(owner_id, count))


if __name__ == "__main__":
    main()
