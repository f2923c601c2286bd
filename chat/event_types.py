"""The payload of every server -> client chat event, one function each (CONTRACT section 3).

Services build outgoing events only through these, and tests compare frames to them, so an
event's shape is declared in exactly one place.
"""

from __future__ import annotations

from typing import Any

MESSAGE_NEW = "message:new"
MESSAGE_EDITED = "message:edited"
MESSAGE_DELETED = "message:deleted"
MESSAGE_REACTION_UPDATE = "message:reaction:update"
MESSAGE_PINNED = "message:pinned"
MESSAGE_UNPINNED = "message:unpinned"
ATTACHMENT_INDEX = "attachment:index"

DURABLE_EVENTS = (
    MESSAGE_NEW,
    MESSAGE_EDITED,
    MESSAGE_DELETED,
    MESSAGE_REACTION_UPDATE,
    MESSAGE_PINNED,
    MESSAGE_UNPINNED,
    ATTACHMENT_INDEX,
)


def message_new(message: dict[str, Any]) -> dict[str, Any]:
    return {"message": message}


def message_edited(message: dict[str, Any]) -> dict[str, Any]:
    return {"message": message}


def message_deleted(*, session_id, message_id) -> dict[str, Any]:
    return {"sessionId": str(session_id), "messageId": str(message_id)}


def message_reaction_update(
    *, session_id, message_id, user_id: int, emoji: str, action: str, reactions: list
) -> dict[str, Any]:
    return {
        "sessionId": str(session_id),
        "messageId": str(message_id),
        "userId": user_id,
        "emoji": emoji,
        "action": action,
        "reactions": reactions,
    }


# --- Pins: durable, numbered like the message events above ------------------------------


def message_pinned(
    *, session_id, message_id, pinned_by: dict[str, Any], pinned_at: str, message: dict[str, Any]
) -> dict[str, Any]:
    """``message`` is the pinned message as rendered after the pin (its ``pinnedAt`` set)."""
    return {
        "sessionId": str(session_id),
        "messageId": str(message_id),
        "pinnedBy": pinned_by,
        "pinnedAt": pinned_at,
        "message": message,
    }


def message_unpinned(*, session_id, message_id, unpinned_by: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessionId": str(session_id),
        "messageId": str(message_id),
        "unpinnedBy": unpinned_by,
    }


# --- Attachment indexing: durable, numbered like the message events above ---------------


def attachment_index(
    *, session_id, message_id, attachment_id, index_status: str, index_error: str
) -> dict[str, Any]:
    """Where an uploaded file's indexing for the assistant stands (``chat.services.
    attachment_index``): pending, indexing, ready, or failed with ``indexError``."""
    return {
        "sessionId": str(session_id),
        "messageId": str(message_id),
        "attachmentId": str(attachment_id),
        "indexStatus": index_status,
        "indexError": index_error,
    }


# --- Receipts: watermark moves gathered per interval, not stored, not numbered ------------

RECEIPTS_UPDATE = "receipts:update"


def receipts_update(*, session_id, readers: list[dict[str, Any]]) -> dict[str, Any]:
    """``readers``: ``[{userId, deliveredSeq, seenSeq}]``, the members whose watermarks moved."""
    return {"sessionId": str(session_id), "readers": readers}


# --- Gateway events: not stored, not numbered ---------------------------------------------

CONNECTION_SUCCESS = "connection:success"
USER_JOINED = "user:joined"
USER_LEFT = "user:left"
TYPING_UPDATE = "typing:update"
PRESENCE_CHANGES = "presence:changes"


def connection_success(*, user_id: int, username: str, connection_id: str, server_time: str):
    return {
        "userId": user_id,
        "username": username,
        "connectionId": connection_id,
        "serverTime": server_time,
    }


def user_joined(*, session_id, user: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": str(session_id), "user": user}


def user_left(*, session_id, user: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": str(session_id), "user": user}


def typing_update(*, session_id, started: list[dict], stopped: list[dict]) -> dict[str, Any]:
    """Who began and who stopped typing in the session since the last ``typing:update``."""
    return {"sessionId": str(session_id), "started": started, "stopped": stopped}


def presence_change(*, user: dict[str, Any], status: str, last_seen_at: str | None) -> dict:
    """One entry of ``presence:changes``."""
    return {"user": user, "status": status, "lastSeenAt": last_seen_at}


def presence_changes(*, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """Users whose presence changed since the last ``presence:changes`` (``presence_change``
    entries)."""
    return {"changes": changes}


# --- Per-user events: sent to one user's connections, not stored, not queued ------------

NOTIFICATION_NEW = "notification:new"


def notification_new(
    *, session_id, session_title: str, message: dict[str, Any], mentioned: bool
) -> dict[str, Any]:
    """A new message the user asked to hear of (their ``notify``), or one naming them."""
    return {
        "sessionId": str(session_id),
        "sessionTitle": session_title,
        "message": message,
        "mentioned": mentioned,
    }
