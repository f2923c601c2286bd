"""Attaching files and links to messages, taking them off again, and reading them back.

A stored file's type is read from its bytes (puremagic), never from its name or the client's
``Content-Type``: it must be one of ``ALLOWED_TYPES`` or plain UTF-8 text that no browser
would sniff as markup. Its size is checked against ``settings.ATTACHMENT_MAX_BYTES`` while it
is read. Each change re-renders the message and broadcasts it as ``message:edited`` after
commit, without marking it edited: attaching is not editing the text.

The reads at the end check membership the way ``chat.selectors`` does, and hide the
attachments of a deleted message as its tombstone does.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import puremagic
from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from chatproject.errors import DomainError, forbidden, not_found, validation_error

from .. import event_types, extensions
from ..events import event_record
from ..models import Attachment, Message
from ..permissions import can_manage, membership_require
from ..selectors import message_get, message_get_for_member
from ..serializers import render_message
from .attachment_index import index_wanted

# Canonical type -> (label for error messages, the MIME names puremagic uses for it).
ALLOWED_TYPES: dict[str, tuple[str, frozenset[str]]] = {
    "image/png": ("PNG", frozenset({"image/png"})),
    "image/jpeg": ("JPEG", frozenset({"image/jpeg", "image/pjpeg"})),
    "image/gif": ("GIF", frozenset({"image/gif"})),
    "image/webp": ("WebP", frozenset({"image/webp"})),
    "application/pdf": ("PDF", frozenset({"application/pdf"})),
    "application/zip": ("ZIP", frozenset({"application/zip", "application/x-zip-compressed"})),
    "audio/mpeg": ("MP3", frozenset({"audio/mpeg", "audio/mp3"})),
    "audio/ogg": ("Ogg", frozenset({"audio/ogg", "application/ogg"})),
    "audio/wav": ("WAV", frozenset({"audio/wav", "audio/wave", "audio/x-wav"})),
    "video/mp4": ("MP4", frozenset({"video/mp4"})),
    "video/webm": ("WebM", frozenset({"video/webm"})),
}
TEXT_TYPE = "text/plain"
_TEXT_LABEL = "plain UTF-8 text (CSV and JSON included)"

# Enough of the file for every signature on the list and for a JPEG's size behind its EXIF.
_HEAD_BYTES = 128 * 1024
_NAME_MAX = 255
# Text a browser would sniff as HTML, XML or SVG: a tag, comment or declaration first.
_MARKUP_START = re.compile(rb"^\s*<[A-Za-z!?/]")
_MARKUP_MIME_PARTS = ("html", "xml", "svg", "javascript", "ecmascript")
_MARKUP_EXTENSIONS = frozenset({".htm", ".html", ".xhtml", ".svg", ".xml", ".js", ".mjs", ".hta"})


@dataclass(frozen=True)
class Inspected:
    mime_type: str
    size: int
    metadata: dict = field(default_factory=dict)


def allowed_types_text() -> str:
    labels = ", ".join(label for label, _ in ALLOWED_TYPES.values())
    return f"{labels}, or {_TEXT_LABEL}"


def upload_too_large() -> DomainError:
    limit = settings.ATTACHMENT_MAX_BYTES
    return DomainError(
        "PAYLOAD_TOO_LARGE",
        f"The file is too large: attachments can be at most {filesizeformat(limit)}.",
        details={"maxBytes": limit},
    )


def _unsupported() -> DomainError:
    return DomainError(
        "UNSUPPORTED_MEDIA_TYPE",
        f"This file type can't be attached. Allowed: {allowed_types_text()}. "
        "The type is read from the file's contents, not its name.",
        details={"allowed": [*ALLOWED_TYPES, TEXT_TYPE]},
    )


def file_name_clean(name: str | None) -> str:
    """The last path component of a client's file name, without control characters, at most
    255 characters (the extension kept). Never empty."""
    name = (name or "").replace("\\", "/")
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = PurePosixPath(name).name.strip()
    if name in ("", ".", ".."):
        return "file"
    if len(name) > _NAME_MAX:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) < 16 else ""
        name = name[: _NAME_MAX - len(suffix)] + suffix
    return name


# --- Type detection ------------------------------------------------------------------------


def _candidates(head: bytes) -> list:
    try:
        return puremagic.magic_string(head)
    except puremagic.PureError:
        return []


def _allowed_type(candidates: list) -> str | None:
    """The allowed type among puremagic's best-ranked guesses that name a MIME type.

    Only the top confidence counts, so a weak secondary guess can't smuggle a file in (a
    Matroska video is not WebM because a WebM rule also fires); ties are kept because one
    signature often fits a family (a ZIP matches DOCX, JAR and ZIP alike).
    """
    typed = [c for c in candidates if c.mime_type]
    if not typed:
        return None
    best = max(c.confidence for c in typed)
    for candidate in typed:
        if candidate.confidence < best:
            continue
        for canonical, (_, aliases) in ALLOWED_TYPES.items():
            if candidate.mime_type.lower() in aliases:
                return canonical
    return None


def _is_markup(head: bytes, candidates: list) -> bool:
    """Whether text could be rendered as a page: a tag first, or a type puremagic names as
    HTML, XML, SVG or script."""
    if _MARKUP_START.match(head.removeprefix(codecs.BOM_UTF8)):
        return True
    return any(
        any(marker in c.mime_type.lower() for marker in _MARKUP_MIME_PARTS)
        or c.extension.lower() in _MARKUP_EXTENSIONS
        for c in candidates
    )


def _image_size(mime_type: str, head: bytes) -> dict:
    """Width and height from the header of a PNG, GIF or JPEG; ``{}`` if not found."""
    size = None
    if mime_type == "image/png" and head[12:16] == b"IHDR" and len(head) >= 24:
        size = struct.unpack(">II", head[16:24])
    elif mime_type == "image/gif" and len(head) >= 10:
        size = struct.unpack("<HH", head[6:10])
    elif mime_type == "image/jpeg":
        size = _jpeg_size(head)
    if not size or not all(size):
        return {}
    return {"width": size[0], "height": size[1]}


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    # Walk the marker segments to the first start-of-frame; DHT, JPG and DAC share its range.
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    return None


def file_inspect(upload) -> Inspected:
    """Read ``upload`` once: its size (PAYLOAD_TOO_LARGE past the limit, stopping there), its
    type from its bytes (UNSUPPORTED_MEDIA_TYPE unless allowed) and image dimensions."""
    limit = settings.ATTACHMENT_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise upload_too_large()
    head = bytearray()
    size = 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    is_text = True
    for chunk in upload.chunks():
        size += len(chunk)
        if size > limit:
            raise upload_too_large()
        if len(head) < _HEAD_BYTES:
            head += chunk[: _HEAD_BYTES - len(head)]
        if is_text:
            try:
                decoder.decode(chunk)
                is_text = b"\x00" not in chunk
            except UnicodeDecodeError:
                is_text = False
    if size == 0:
        raise validation_error("The file is empty.", {"file": ["The file is empty."]})
    head = bytes(head)
    candidates = _candidates(head)
    if mime_type := _allowed_type(candidates):
        return Inspected(mime_type=mime_type, size=size, metadata=_image_size(mime_type, head))
    if is_text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            is_text = False
    if is_text and not _is_markup(head, candidates):
        return Inspected(mime_type=TEXT_TYPE, size=size)
    raise _unsupported()


# --- Writes --------------------------------------------------------------------------------


def _message_for_attaching(*, user, message_id) -> Message:
    message = message_get_for_member(user=user, message_id=message_id)
    if message.author_id != user.pk:
        raise forbidden("Only the message's author can attach files to it.")
    if message.is_deleted:
        raise validation_error("A deleted message can't take attachments.")
    return message


def _lock_live(message: Message) -> Message:
    locked = Message.objects.select_for_update().get(pk=message.pk)
    if locked.is_deleted:
        raise validation_error("A deleted message can't take attachments.")
    return locked


def _broadcast_change(message_id) -> None:
    """Bump the message's ``updated_at`` and log + broadcast it as ``message:edited``."""
    Message.objects.filter(pk=message_id).update(updated_at=timezone.now())
    message = message_get(message_id)
    event_record(
        session_id=message.session_id,
        event=event_types.MESSAGE_EDITED,
        data=event_types.message_edited(render_message(message)),
        message_id=message.pk,
    )


def attachment_add_file(*, user, message_id, upload) -> Attachment:
    """Store ``upload`` (a Django ``File``) on the author's message and broadcast the message.

    The file is written before the row; if the transaction fails the file is removed again,
    so no stored file outlives a refused attachment.
    """
    message = _message_for_attaching(user=user, message_id=message_id)
    inspected = file_inspect(upload)
    attachment = Attachment(
        message=message,
        uploaded_by=user,
        file_name=file_name_clean(getattr(upload, "name", None)),
        mime_type=inspected.mime_type,
        file_size=inspected.size,
        metadata=inspected.metadata,
    )
    indexed = index_wanted(mime_type=inspected.mime_type)
    if indexed:
        attachment.index_status = Attachment.IndexStatus.PENDING
    upload.seek(0)
    attachment.file.save(attachment.file_name, upload, save=False)
    try:
        with transaction.atomic():
            _lock_live(message)
            attachment.save(force_insert=True)
            _broadcast_change(message.pk)
            if indexed:
                # Indexing runs off the request path, and only once the file is stored.
                transaction.on_commit(lambda: extensions.attachment_stored(attachment.pk))
    except BaseException:
        attachment.file.delete(save=False)
        raise
    return attachment


def attachment_add_url(
    *,
    user,
    message_id,
    file_name: str,
    file_url: str,
    mime_type: str,
    file_size: int = 0,
    metadata: dict | None = None,
) -> Attachment:
    """Attach a link (validated by ``AttachmentUrlInput``) to the author's message. Nothing is
    fetched or stored: ``mime_type`` and ``file_size`` are what the client declares."""
    message = _message_for_attaching(user=user, message_id=message_id)
    with transaction.atomic():
        _lock_live(message)
        attachment = Attachment.objects.create(
            message=message,
            uploaded_by=user,
            file_name=file_name_clean(file_name),
            file_url=file_url,
            mime_type=mime_type,
            file_size=file_size,
            metadata=metadata or {},
        )
        _broadcast_change(message.pk)
    return attachment


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise not_found(what) from exc


def _attachment_get(attachment_id) -> Attachment:
    attachment_id = _uuid(attachment_id, "Attachment")
    attachment = Attachment.objects.select_related("message").filter(pk=attachment_id).first()
    if attachment is None:
        raise not_found("Attachment")
    return attachment


def attachment_delete(*, user, attachment_id) -> None:
    """Remove an attachment: its uploader, the message's author, the session's owner/admins or
    staff. The stored file is deleted once the removal commits."""
    attachment = _attachment_get(attachment_id)
    message = attachment.message
    membership = (
        None if user.is_staff else membership_require(user=user, session_id=message.session_id)
    )
    if user.pk not in (attachment.uploaded_by_id, message.author_id) and not can_manage(
        user=user, membership=membership
    ):
        raise forbidden(
            "Only the uploader, the message's author or a moderator can remove an attachment."
        )
    storage, stored_name = attachment.file.storage, attachment.file.name
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        removed, _ = Attachment.objects.filter(pk=attachment.pk).delete()
        if not removed:
            return
        # A tombstone shows no attachments, so its clients have nothing to update.
        if not locked.is_deleted:
            _broadcast_change(locked.pk)
        if stored_name:
            transaction.on_commit(lambda: storage.delete(stored_name))


# --- Reads ---------------------------------------------------------------------------------


def attachments_for_message(*, user, message_id) -> list[Attachment]:
    """The message's attachments, oldest first, for a member; none for a deleted message."""
    message = message_get_for_member(user=user, message_id=message_id)
    return [] if message.is_deleted else message.attachment_list


def attachment_get_for_member(*, user, attachment_id) -> Attachment:
    """The attachment, if ``user`` is a member of its message's session and the message is
    not deleted (NOT_FOUND then, as the tombstone hides it)."""
    attachment = _attachment_get(attachment_id)
    membership_require(user=user, session_id=attachment.message.session_id)
    if attachment.message.is_deleted:
        raise not_found("Attachment")
    return attachment


def attachment_file_for_member(*, user, attachment_id) -> Attachment:
    """As ``attachment_get_for_member``, for a stored file; a link has none (NOT_FOUND)."""
    attachment = attachment_get_for_member(user=user, attachment_id=attachment_id)
    if not attachment.file:
        raise DomainError(
            "NOT_FOUND",
            "This attachment is a link, not a stored file: open its fileUrl instead.",
        )
    return attachment
