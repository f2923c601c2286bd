"""A session's export written out, page by page: as one JSON object or as Markdown.

Both formats write from the same record of a message (``message_record``): its author, role,
agent and model, text, times and attachments as links. A deleted message is a tombstone: it
keeps its place (id, seq, author, times) and loses its text, metadata and attachments, as it
does everywhere a member can read it.

A writer turns the export's head, each page and the end into bytes, so the response can send
each part as soon as it is read and never hold more than a page. JSON is written as one
object, ``{session, exportedAt, messages: [...]}``, one message a line, valid once complete.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from .export_pages import ExportHead, ExportPage
from .models import Attachment, Message
from .serializers import attachment_url, iso

_UNSAFE_NAME = re.compile(r"[^\w.-]+")


def export_filename(*, title: str, on: date, fmt: str) -> str:
    """``<title>-<date>.<fmt>``, the title reduced to word characters, dots and dashes so
    the name is safe on any file system."""
    stem = _UNSAFE_NAME.sub("-", title).strip("-.")[:80] or "chat"
    return f"{stem}-{on.isoformat()}.{fmt}"


@dataclass(frozen=True)
class ExportContext:
    """What records need beyond the rows: the site's address, for absolute download links,
    and the agents' names by id."""

    base_url: str
    agent_names: dict[uuid.UUID, str] = field(default_factory=dict)


def _attachment_link(attachment: Attachment, context: ExportContext) -> str:
    """The attachment's ``fileUrl``, made absolute when it is ours to download."""
    url = attachment_url(attachment)
    return context.base_url + url if attachment.file else url


def message_record(
    message: Message, attachments: list[Attachment], context: ExportContext
) -> dict[str, Any]:
    """One message of the export (camelCase, as the API renders it)."""
    deleted = message.is_deleted
    author = message.author
    webhook = None if deleted else (message.metadata or {}).get("webhook")
    return {
        "id": message.id,
        "seq": message.seq,
        "parentMessageId": message.parent_id,
        "author": {"id": author.id, "username": author.username} if author else None,
        "isBot": author is not None and author.is_bot,
        # A webhook's post names the sender it was posted as (``metadata.webhook``).
        "webhook": webhook,
        "role": message.role,
        "agentId": message.agent_id,
        "agentName": context.agent_names.get(message.agent_id) if message.agent_id else None,
        "model": None if deleted else (message.metadata or {}).get("model"),
        "content": "" if deleted else message.content,
        "tokens": None if deleted else message.tokens,
        "isEdited": message.is_edited,
        "editedAt": iso(message.edited_at),
        "isDeleted": deleted,
        "deletedAt": iso(message.deleted_at),
        "createdAt": iso(message.created_at),
        "attachments": []
        if deleted
        else [
            {
                "id": a.id,
                "fileName": a.file_name,
                "url": _attachment_link(a, context),
                "mimeType": a.mime_type,
                "fileSize": a.file_size,
            }
            for a in attachments
        ],
    }


def session_record(head: ExportHead) -> dict[str, Any]:
    session = head.session
    creator = session.created_by
    return {
        "id": session.id,
        "title": session.title,
        "createdBy": {"id": creator.id, "username": creator.username} if creator else None,
        "agentId": session.agent_id,
        "createdAt": iso(session.created_at),
        "members": [
            {"id": m.user.id, "username": m.user.username, "role": m.role} for m in head.members
        ],
    }


class ExportWriter:
    """Writes one export: ``head`` once, ``page`` for each page in order, ``tail`` once."""

    extension = ""
    content_type = ""

    def __init__(self, context: ExportContext) -> None:
        self.context = context

    def records(self, page: ExportPage) -> list[dict[str, Any]]:
        return [
            message_record(message, page.attachments.get(message.id, []), self.context)
            for message in page.messages
        ]

    def head(self, head: ExportHead, exported_at: datetime) -> bytes:
        raise NotImplementedError

    def page(self, page: ExportPage) -> bytes:
        raise NotImplementedError

    def tail(self) -> bytes:
        raise NotImplementedError


class JsonWriter(ExportWriter):
    extension = "json"
    content_type = "application/json"

    def __init__(self, context: ExportContext) -> None:
        super().__init__(context)
        self.written = 0

    def head(self, head: ExportHead, exported_at: datetime) -> bytes:
        opening = {"session": session_record(head), "exportedAt": iso(exported_at)}
        # The object without its closing brace, then the messages array, left open.
        return orjson.dumps(opening)[:-1] + b',"messages":['

    def page(self, page: ExportPage) -> bytes:
        lines = [orjson.dumps(record) for record in self.records(page)]
        if not lines:
            return b""
        lead = b"\n" if self.written == 0 else b",\n"
        self.written += len(lines)
        return lead + b",\n".join(lines)

    def tail(self) -> bytes:
        return b"\n]}\n"


def _when(value: str | None) -> str:
    """An ISO time as a reader wants it: ``2026-01-31 14:05 UTC``."""
    return f"{value[:10]} {value[11:16]} UTC" if value else ""


def _link_text(name: str) -> str:
    return re.sub(r"([\\\[\]])", r"\\\1", name)


def _link_target(url: str) -> str:
    return url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


class MarkdownWriter(ExportWriter):
    """A transcript: a heading per message (author, model and agent, time), its text, its
    attachments as a list of links; a thread's replies quoted under their root."""

    extension = "md"
    content_type = "text/markdown; charset=utf-8"

    def head(self, head: ExportHead, exported_at: datetime) -> bytes:
        session = session_record(head)
        members = ", ".join(
            m["username"] if m["role"] == "member" else f"{m['username']} ({m['role']})"
            for m in session["members"]
        )
        return (
            f"# {' '.join(session['title'].split())}\n\n"
            f"Exported {_when(iso(exported_at))} from session `{session['id']}`.  \n"
            f"Members: {members or 'none'}.\n"
        ).encode()

    def page(self, page: ExportPage) -> bytes:
        return "".join(self.block(record) for record in self.records(page)).encode()

    def tail(self) -> bytes:
        return b""

    def block(self, record: dict[str, Any]) -> str:
        """One message: a blank line, its heading, its body; quoted if it is a reply."""
        lines = [f"#### {self.title(record)}", ""]
        if record["isDeleted"]:
            lines.append("*This message was deleted.*")
        else:
            lines.extend(record["content"].splitlines() or [""])
            if record["attachments"]:
                lines.append("")
                lines.extend(
                    f"- Attachment: [{_link_text(a['fileName'])}](<{_link_target(a['url'])}>)"
                    f" ({a['mimeType']}, {_size(a['fileSize'])})"
                    for a in record["attachments"]
                )
        if record["parentMessageId"] is not None:
            lines = [f"> {line}" if line else ">" for line in lines]
        return "\n" + "\n".join(lines) + "\n"

    def title(self, record: dict[str, Any]) -> str:
        """``alice · 2026-01-31 14:05 UTC``; an answer says its model and agent:
        ``Assistant (llama3.2, agent Helper) · …``."""
        author = record["author"]
        assistant = record["role"] == Message.Role.ASSISTANT
        name = author["username"] if author else ("Assistant" if assistant else record["role"])
        if record["webhook"]:
            name = record["webhook"].get("username") or name
        if record["isBot"]:
            name += " (bot)"
        parts = [f"↳ {name}" if record["parentMessageId"] else name]
        if assistant:
            details = [record["model"]] if record["model"] else []
            if record["agentName"]:
                details.append(f"agent {record['agentName']}")
            if details:
                parts.append(f"({', '.join(details)})")
        parts.append(f"· {_when(record['createdAt'])}")
        if record["isEdited"] and not record["isDeleted"]:
            parts.append("(edited)")
        return " ".join(parts)


WRITERS: dict[str, type[ExportWriter]] = {"json": JsonWriter, "md": MarkdownWriter}
