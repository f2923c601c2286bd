"""How large a frame the server may send (CONTRACT section 3, "Frame size"), and how the
frames that could grow past it are made to fit.

The servers' caps (daphne ``--websocket-max-message-size``, uvicorn ``--ws-max-size``, both
262144 as the README serves them) apply to what the server sends too: one frame over the cap
closes its socket with 1011, and every retry does the same (TRAPS). So:

- every single event fits in ``event_max_bytes()``, half the cap: what users control is bounded
  at the doors (message content, attachment ``metadata``), and a message whose whole text
  would not fit (a long answer) goes out without it (``contentOmitted``; REST has it all);
- a reply that gathers events (the ``session:join`` replay, the offline queue) takes what
  fits in the rest of the cap and says ``hasMore``;
- a frame that would still be too large is never sent (``frame_fits``): its socket, and
  every other, stays open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings

from chatproject.errors import validation_error

# Kept below the cap for the envelope around an item a reply gathers (its ``event``, ``ref``
# and separators), so a reply filled to its budget still fits.
ENVELOPE_ALLOWANCE = 1024


def frame_max_bytes() -> int:
    """The largest frame, in bytes of encoded JSON, the server sends."""
    return settings.WS_SEND_MAX_BYTES


def event_max_bytes() -> int:
    """The largest single event frame: half the cap, so a ``session:join`` reply always has
    room for its snapshot and at least one missed event."""
    return frame_max_bytes() // 2


def encoded_size(value: Any) -> int:
    return len(orjson.dumps(value))


def frame_fits(text: str) -> bool:
    """Whether an encoded frame may be sent. A text of n characters takes n to 4n bytes,
    and exactly n if it is ASCII (a scan, no copy): only a long non-ASCII text is encoded
    again to be measured. Called for each socket a broadcast reaches, so kept cheap."""
    cap = frame_max_bytes()
    length = len(text)
    if length * 4 <= cap:
        return True
    if length > cap:
        return False
    return text.isascii() or len(text.encode()) <= cap


def content_omitted(data: Mapping[str, Any], field: str = "content") -> dict[str, Any]:
    """``data`` without its ``content`` (or ``field``), saying so (``contentOmitted: true``,
    or ``<field>Omitted``)."""
    rest = {key: value for key, value in data.items() if key != field}
    return {**rest, f"{field}Omitted": True}


def fit_content(data: dict[str, Any], *, room: int, field: str = "content") -> dict[str, Any]:
    """``data`` as it is if it encodes to at most ``room`` bytes, else without its
    ``content`` (or ``field``): ``content_omitted``."""
    if field not in data or encoded_size(data) <= room:
        return data
    return content_omitted(data, field)


def _scalar_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What a message's metadata says in a few words (status, model, finish reason, ...),
    without its lists and objects (an answer's ``toolCalls``)."""
    return {key: value for key, value in metadata.items() if not isinstance(value, dict | list)}


def fit_event_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """An event frame that fits in ``event_max_bytes()``: as it is, or, for a message's
    frame (``message:new``, ``message:edited``), the message without its text
    (``contentOmitted``), then without its metadata's lists too (``metadataOmitted``), as an
    answer's long text or tool results need.

    What a user can still make too large (attachments or reactions piled on one message) is
    refused: VALIDATION_ERROR, and the transaction that made it rolls back."""
    limit = event_max_bytes()
    if encoded_size(frame) <= limit:
        return frame
    message = frame.get("data", {}).get("message")
    if isinstance(message, dict):

        def with_message(changed: dict[str, Any]) -> dict[str, Any]:
            return {**frame, "data": {**frame["data"], "message": changed}}

        without_content = content_omitted(message)
        fitted = with_message(without_content)
        if encoded_size(fitted) <= limit:
            return fitted
        fitted = with_message(
            {
                **without_content,
                "metadata": _scalar_metadata(message.get("metadata") or {}),
                "metadataOmitted": True,
            }
        )
        if encoded_size(fitted) <= limit:
            return fitted
    raise validation_error(
        "This change would make the message too large to deliver to the room "
        f"(an event can be at most {limit // 1024} KiB): remove some of its attachments "
        "or reactions first.",
        {"message": [f"An event can be at most {limit} bytes once encoded."]},
    )
