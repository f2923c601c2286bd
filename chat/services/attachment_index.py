"""Where an uploaded file's indexing for the assistant stands, and every change of it.

An uploaded text, Markdown, CSV or PDF file starts ``pending`` (``attachment_add_file``);
the LLM app's indexer (registered through ``chat.extensions``) takes it off the request
path and moves it on through these functions: ``indexing`` when an attempt begins,
``ready`` once its passages are stored, ``failed`` with the reason otherwise. Links are never
indexed (their URLs are not fetched), nor other types.

Each change is a durable ``attachment:index`` event: it takes the session's next seq in the
transaction that makes the change and is broadcast on commit, so a client that missed it
replays it by ``lastSeq`` like a message event. ``chat`` owns the status; what a passage is
and how text is extracted and embedded is the LLM app's (``chat`` never imports LangChain).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import event_types
from ..events import event_record
from ..models import Attachment

# The types whose text the assistant can be given. Uploads are typed from their bytes, so
# CSV and Markdown files arrive as text/plain; links may declare the others but are never
# indexed.
INDEXED_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/pdf"})
Status = Attachment.IndexStatus
WAITING = (Status.PENDING, Status.INDEXING)
ERROR_MAX = Attachment._meta.get_field("index_error").max_length


def index_wanted(*, mime_type: str) -> bool:
    """Whether a new stored file is to be indexed: one of an indexed type (a link never is)."""
    return mime_type in INDEXED_TYPES


def _status_change(attachment: Attachment, **fields) -> Attachment:
    """Write ``fields`` on the (locked) attachment and log the change as ``attachment:index``."""
    for name, value in fields.items():
        setattr(attachment, name, value)
    attachment.save(update_fields=list(fields))
    message = attachment.message
    event_record(
        session_id=message.session_id,
        event=event_types.ATTACHMENT_INDEX,
        data=event_types.attachment_index(
            session_id=message.session_id,
            message_id=message.pk,
            attachment_id=attachment.pk,
            index_status=attachment.index_status,
            index_error=attachment.index_error,
        ),
        message_id=message.pk,
    )
    return attachment


def _locked(attachment_id) -> Attachment | None:
    """The attachment, locked until the transaction ends; None if it is gone or its
    message was deleted (a tombstone shows no attachments: nothing to index or tell)."""
    attachment = (
        Attachment.objects.select_for_update()
        .select_related("message")
        .filter(pk=attachment_id)
        .first()
    )
    if attachment is None or attachment.message.is_deleted:
        return None
    return attachment


def attachment_index_begin(*, attachment_id) -> Attachment | None:
    """Start an attempt: ``indexing``, one more attempt counted. None if the attachment is
    not waiting for one (gone, ready, never to be indexed, or failed with every attempt
    used), and nothing changes."""
    with transaction.atomic():
        attachment = _locked(attachment_id)
        if attachment is None:
            return None
        retryable = (
            attachment.index_status == Status.FAILED
            and attachment.index_attempts < settings.INDEX_MAX_ATTEMPTS
        )
        if attachment.index_status not in WAITING and not retryable:
            return None
        return _status_change(
            attachment,
            index_status=Status.INDEXING,
            index_error="",
            index_attempts=attachment.index_attempts + 1,
        )


def attachment_index_ready(*, attachment_id) -> Attachment | None:
    """The attempt stored the file's passages: ``ready``. Call it in the transaction that
    stores them, so the two commit together. None if the attachment is gone."""
    with transaction.atomic():
        attachment = _locked(attachment_id)
        if attachment is None:
            return None
        return _status_change(
            attachment, index_status=Status.READY, index_error="", indexed_at=timezone.now()
        )


def attachment_index_fail(*, attachment_id, error: str) -> Attachment | None:
    """The attempt failed: ``failed`` with ``error``, the reason people are shown. None if
    the attachment is gone."""
    with transaction.atomic():
        attachment = _locked(attachment_id)
        if attachment is None:
            return None
        reason = error.strip() or "The file could not be indexed."
        return _status_change(
            attachment, index_status=Status.FAILED, index_error=reason[:ERROR_MAX]
        )


def attachments_index_waiting(*, limit: int = 100) -> list:
    """Ids of attachments waiting for an attempt (pending, or left ``indexing`` by a worker
    that died), oldest first: what the indexer's sweeper picks up."""
    rows = Attachment.objects.filter(index_status__in=WAITING, message__is_deleted=False)
    return list(rows.order_by("created_at").values_list("pk", flat=True)[:limit])
