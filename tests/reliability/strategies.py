"""Hypothesis strategies for the fuzz tests: JSON of every shape, with the platform's real
ids mixed in so that some frames and bodies get past validation into the services."""

from __future__ import annotations

import json
import uuid

from hypothesis import strategies as st

WS_FIELDS: dict[str, tuple[str, ...]] = {
    "session:join": ("sessionId", "lastSeq"),
    "session:leave": ("sessionId",),
    "message:send": ("sessionId", "content", "parentMessageId", "clientId"),
    "message:edit": ("messageId", "content"),
    "message:delete": ("messageId",),
    "message:delivered": ("messageId",),
    "message:seen": ("messageId",),
    "message:reaction": ("messageId", "emoji"),
    "typing:start": ("sessionId",),
    "typing:stop": ("sessionId",),
    "stream:request": ("sessionId", "prompt", "agentId", "parentMessageId", "config"),
    "stream:stop": ("streamId",),
    "auth:refresh": ("token",),
    "ping": (),
}

HUGE = (2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 2**31, 2**63 - 1)


def scalars(ids: list[str]) -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(HUGE),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.sampled_from(["", " ", "\u0000", "\u202e", "🙂" * 3, "a" * 10_001, "%s%n", "<script>"]),
        st.sampled_from([*ids, str(uuid.UUID(int=0)), ids[0].upper(), ids[0].replace("-", "")]),
        st.uuids().map(str),
    )


def json_values(ids: list[str]) -> st.SearchStrategy:
    return st.recursive(
        scalars(ids),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


def plausible(name: str, ids: list[str]) -> st.SearchStrategy:
    """Values a field could really have (the real ids, numbers near and far past the
    limits, text of any kind), so that frames get past validation into the services."""
    texts = st.text(min_size=1, max_size=60)
    numbers = st.integers(min_value=-5, max_value=10**4) | st.sampled_from(HUGE)
    by_name = {
        "sessionId": st.sampled_from(ids),
        "messageId": st.sampled_from(ids),
        "parentMessageId": st.none() | st.sampled_from(ids),
        "chatId": st.none() | st.sampled_from(ids),
        "streamId": st.uuids().map(str) | st.sampled_from(ids),
        "agentId": st.none() | st.uuids().map(str),
        "lastSeq": st.none() | numbers,
        "userId": numbers,
        "memberIds": st.lists(numbers, max_size=3),
        "fileSize": numbers,
        "maxTokens": numbers,
        "temperature": st.floats(min_value=-1, max_value=3) | numbers,
        "config": st.fixed_dictionaries(
            {}, optional={"model": texts, "temperature": st.floats(-1, 3), "maxTokens": numbers}
        ),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "x"]), "content": texts}
            ),
            max_size=3,
        ),
        "metadata": st.dictionaries(st.text(max_size=8), scalars(ids), max_size=3),
        "fileUrl": st.sampled_from(["https://example.com/a.png", "javascript:alert(1)", "ftp://x"]),
        "mimeType": st.sampled_from(["image/png", "text/plain", "x", "a/b/c"]),
    }
    return by_name.get(name, texts)


def field_dicts(fields: tuple[str, ...], ids: list[str]) -> st.SearchStrategy:
    """Objects with some of the expected keys (plausible or any values), and sometimes
    extra ones."""
    wild = json_values(ids)
    value = {name: st.one_of(plausible(name, ids), plausible(name, ids), wild) for name in fields}
    return st.one_of(
        st.fixed_dictionaries({}, optional=value),
        st.fixed_dictionaries({}, optional=value),
        st.fixed_dictionaries({}, optional=value),
        st.dictionaries(st.sampled_from([*fields, "x", "__proto__"]), wild, max_size=6),
    )


def ws_frames(ids: list[str]) -> st.SearchStrategy[str]:
    """Frame text: well-formed envelopes for every event (and unknown ones) with any data,
    envelopes of the wrong shape, JSON that is no envelope, and text that is no JSON."""
    events = st.sampled_from([*WS_FIELDS, "", "nope", "message:new", "ack", "💥"])

    def envelope(event: str) -> st.SearchStrategy[dict]:
        data = field_dicts(WS_FIELDS.get(event, ("sessionId", "messageId")), ids)
        return st.fixed_dictionaries(
            {"event": st.just(event), "data": st.one_of(data, data, data, json_values(ids))},
            optional={"ref": json_values(ids)},
        )

    envelopes = events.flatmap(envelope)
    dumped = st.one_of(
        envelopes,
        envelopes,
        envelopes,
        envelopes,
        envelopes,
        envelopes,
        st.fixed_dictionaries({"event": json_values(ids)}, optional={"data": json_values(ids)}),
        json_values(ids),
    ).map(lambda value: json.dumps(value))
    raw = st.one_of(
        st.text(max_size=80),
        st.sampled_from(["{", "[", '{"event": "ping", "data": {}', "NaN", "1e999", "\ufeff{}"]),
    )
    return st.one_of(dumped, dumped, dumped, dumped, raw)


REST_FIELDS: dict[str, tuple[str, ...]] = {
    "session": ("title", "memberIds", "agentId"),
    "member": ("userId",),
    "message": ("sessionId", "content", "parentMessageId", "clientId"),
    "edit": ("content",),
    "reaction": ("emoji",),
    "attachment": ("fileName", "fileUrl", "mimeType", "fileSize", "metadata"),
    "register": ("username", "password", "email"),
    "token": ("username", "password"),
    "refresh": ("refresh",),
    "stream": ("messages", "model", "chatId", "systemPrompt"),
    "query": ("prompt", "sessionId", "agentId", "model", "temperature", "maxTokens"),
    "agent": ("name", "model", "systemPrompt", "temperature", "maxTokens", "tools"),
}


def rest_bodies(kind: str, ids: list[str]) -> st.SearchStrategy[bytes]:
    """A request body: JSON objects with the endpoint's fields (any values), other JSON, or
    bytes that are no JSON."""
    values = field_dicts(REST_FIELDS[kind], ids) | json_values(ids)
    return values.map(lambda v: json.dumps(v).encode()) | st.one_of(
        st.binary(max_size=40), st.sampled_from([b"", b"{", b"null", b"\xff\xfe", b"[]" * 3])
    )
