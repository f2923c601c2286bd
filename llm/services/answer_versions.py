"""The versions of an assistant answer, as its message carries them.

Each stream of a message is one version of its answer (``Stream.version``, from 1), and
keeps that version's text once it ends (``Stream.content``). From the first regenerate on,
the message's metadata lists them, ``versions: [{version, streamId, model, agentId,
requestedBy, status, createdAt}]``, and says which one it shows (``version``): the newest
finished one (completed or stopped). A failed version is listed but not shown, unless no
version has finished. The message's content, tokens and outcome fields are the shown
version's, so later context, search and a reload read that one; and since every change goes
out as a durable ``message:edited``, a replay by ``lastSeq`` carries the versions too.
"""

from __future__ import annotations

from accounts.serializers import render_user
from chat.models import Message
from chat.serializers import iso

from ..models import Stream

FINISHED = (Stream.Status.COMPLETED, Stream.Status.STOPPED)

# What describes how the shown version was made and ended: replaced as a whole when another
# version is shown, so nothing of the earlier one's outcome lingers.
OUTCOME_KEYS = (
    "streamId",
    "status",
    "model",
    "finishReason",
    "toolCalls",
    "stoppedBy",
    "errorCode",
    "errorMessage",
    "requestedBy",
    "citations",
)


def version_entry(stream: Stream) -> dict:
    """One entry of ``metadata.versions`` for a stream row (its ``requested_by`` loaded)."""
    return {
        "version": stream.version,
        "streamId": str(stream.pk),
        "model": stream.model,
        "agentId": str(stream.agent_id) if stream.agent_id else None,
        "requestedBy": render_user(stream.requested_by) if stream.requested_by else None,
        "status": stream.status,
        "createdAt": iso(stream.started_at),
    }


def versions_listed(message: Message) -> list[dict]:
    """The message's versions as its metadata lists them; for an answer never regenerated
    (no list yet), built from its stream rows."""
    listed = (message.metadata or {}).get("versions")
    if listed:
        return [dict(entry) for entry in listed]
    rows = Stream.objects.filter(message_id=message.pk).select_related("requested_by")
    return [version_entry(row) for row in rows.order_by("version")]


def answer_version_start(*, message: Message, stream: Stream) -> dict:
    """The message's metadata once ``stream`` (a new version, just stored) has started: the
    list gains it, still streaming; the version shown stays the one shown so far."""
    metadata = dict(message.metadata or {})
    metadata.setdefault("promptId", str(stream.user_message_id))
    versions = [entry for entry in versions_listed(message) if entry["version"] != stream.version]
    metadata["version"] = metadata.get("version") or max(
        (entry["version"] for entry in versions), default=1
    )
    # As a first answer's message says it from the start: a reload shows it being written.
    metadata["versions"] = [*versions, {**version_entry(stream), "status": Stream.Status.STREAMING}]
    return metadata


def answer_version_end(
    *, message_id, version: int, status: str, content: str, tokens, metadata: dict
) -> dict:
    """What the message becomes when ``version`` ends with ``status``, as the keyword
    arguments of ``assistant_message_finish``: ``content``, ``tokens`` and ``metadata``
    (the outcome of the version, as ``stream_outcome_save`` says it). Locks the message;
    Message.DoesNotExist if it is gone."""
    locked = Message.objects.select_for_update().get(pk=message_id)
    kept = dict(locked.metadata or {})
    versions = versions_listed(locked)
    requested_by = None
    for entry in versions:
        if entry["version"] == version:
            entry["status"] = status
            entry["model"] = metadata.get("model") or entry["model"]
            requested_by = entry["requestedBy"]
    earlier_finished = any(
        entry["status"] in FINISHED for entry in versions if entry["version"] != version
    )
    if status not in FINISHED and earlier_finished:
        # A failed version is kept in the list; the message goes on showing the newest
        # finished one, text and outcome.
        return {
            "content": locked.content,
            "tokens": locked.tokens,
            "metadata": {**kept, "versions": versions},
            "replace": True,
        }
    shown = {key: value for key, value in kept.items() if key not in OUTCOME_KEYS}
    return {
        "content": content,
        "tokens": tokens,
        "metadata": {
            **shown,
            **metadata,
            "requestedBy": requested_by,
            "versions": versions,
            "version": version,
        },
        "replace": True,
    }
