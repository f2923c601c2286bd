"""Reads of chat data, each checking that the caller may see what it returns.

Both doors (DRF views and the WebSocket consumer) use these, so a membership check is made
in one place. Querysets load what the serializers render in a fixed number of queries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from chatproject.errors import forbidden, not_found, validation_error

from .message_details import detailed_messages, messages_with_details
from .models import (
    ChatSession,
    Membership,
    Mention,
    Message,
    MessageEdit,
    Reaction,
    SessionEvent,
)
from .search import messages_matching

# Search serves the newest this many matches only, as GitHub's search serves its first 1,000:
# its ``total`` counts up to the cap, so neither the count nor a deep page reads every match
# of a common word in a large session.
SEARCH_MATCHES_MAX = 1000


def _as_uuid(value, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise not_found(what) from exc


def membership_get(*, user, session_id) -> Membership | None:
    return Membership.objects.filter(session_id=session_id, user_id=user.pk).first()


def session_get(*, session_id) -> ChatSession:
    """The session, or NOT_FOUND. No access check: for staff moderation and internal use."""
    session_id = _as_uuid(session_id, "Session")
    session = ChatSession.objects.filter(pk=session_id).select_related("created_by").first()
    if session is None:
        raise not_found("Session")
    return session


NOT_A_MEMBER = "You are not a member of this session."


def _with_membership(*, user, session_id, **annotations) -> QuerySet[ChatSession]:
    """The session ``session_id`` (NOT_FOUND for a malformed id) with ``caller_is_member``
    annotated: the membership test rides along in the session's query."""
    session_id = _as_uuid(session_id, "Session")
    mine = Membership.objects.filter(session=OuterRef("pk"), user_id=user.pk)
    return ChatSession.objects.filter(pk=session_id).annotate(
        caller_is_member=Exists(mine), **annotations
    )


def _admit(caller_is_member: bool | None) -> None:
    """Refuse unless the caller is a member; None: there is no such session."""
    if caller_is_member is None:
        raise not_found("Session")
    if not caller_is_member:
        raise forbidden(NOT_A_MEMBER)


def session_get_for_member(*, user, session_id) -> ChatSession:
    """The session, if ``user`` is a member: NOT_FOUND if unknown, FORBIDDEN if not a
    member. One query."""
    found = _with_membership(user=user, session_id=session_id).select_related("created_by")
    session = found.first()
    _admit(session.caller_is_member if session is not None else None)
    return session


@dataclass(frozen=True)
class SessionBrief:
    """What an answer needs of a session: its id and its default agent's."""

    id: uuid.UUID
    agent_id: uuid.UUID | None


def session_brief_for_member(*, user, session_id) -> SessionBrief:
    """``session_get_for_member``'s check and answers, reading only what a room stream's
    request needs, in one query."""
    row = (
        _with_membership(user=user, session_id=session_id)
        .values("pk", "agent_id", "caller_is_member")
        .first()
    )
    _admit(row["caller_is_member"] if row is not None else None)
    return SessionBrief(id=row["pk"], agent_id=row["agent_id"])


def thread_root_get(*, session_id, parent_id) -> Message | None:
    """The message a reply to ``parent_id`` hangs under (None for no parent). Threads are one
    level deep, as in Slack: a reply to a reply joins the same thread. The caller has
    checked that the user may see the session."""
    if parent_id is None:
        return None
    parent = Message.objects.filter(pk=parent_id, session_id=session_id).first()
    if parent is None:
        raise validation_error(
            "parentMessageId is not a message of this session.",
            {"parentMessageId": ["No message of this session has this id."]},
        )
    if parent.parent_id is not None:
        return Message.objects.get(pk=parent.parent_id)
    return parent


def session_with_members(session_id) -> ChatSession:
    return (
        ChatSession.objects.select_related("created_by")
        .prefetch_related(
            Prefetch(
                "memberships", queryset=Membership.objects.select_related("user").order_by("id")
            )
        )
        .get(pk=session_id)
    )


def sessions_for_user(*, user) -> QuerySet[ChatSession]:
    """The user's sessions, most recently active first, with their members.

    A session's activity is its last message, or its creation while it has none: sorting on
    ``last_message_at`` alone would put empty sessions first on PostgreSQL and last on SQLite
    (NULLs sort differently), whatever their age.
    """
    return (
        ChatSession.objects.filter(memberships__user_id=user.pk)
        .select_related("created_by")
        .prefetch_related(
            Prefetch(
                "memberships", queryset=Membership.objects.select_related("user").order_by("id")
            )
        )
        .order_by(Coalesce("last_message_at", "created_at").desc(), "-created_at")
    )


def message_get(message_id) -> Message:
    message_id = _as_uuid(message_id, "Message")
    found = messages_with_details(detailed_messages().filter(pk=message_id)[:1])
    if not found:
        raise not_found("Message")
    return found[0]


def message_get_for_member(*, user, message_id) -> Message:
    """The message, if ``user`` is a member of its session."""
    message = message_get(message_id)
    if not Membership.objects.filter(session_id=message.session_id, user_id=user.pk).exists():
        raise forbidden("You are not a member of this message's session.")
    return message


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    total: int


def message_history(
    *,
    session: ChatSession,
    limit: int = 50,
    offset: int = 0,
    parent_id=None,
    after_seq: int | None = None,
    before_seq: int | None = None,
) -> Page:
    """A page of a session's timeline (or of one thread), oldest first.

    Without ``parent_id`` the timeline holds top-level messages; replies live in their
    thread, as in Slack and Zulip's topics. With ``after_seq`` the page is the first
    ``limit`` messages after it (catching up); otherwise it is the newest ``limit`` before
    ``before_seq`` (or the end), skipping ``offset`` from the newest (scrolling back).
    ``total`` is the size of the whole conversation, whatever the cursors
    (``_history_total``).
    """
    base = detailed_messages().filter(session=session, parent_id=parent_id)
    if after_seq is not None:
        base = base.filter(seq__gt=after_seq)
    if before_seq is not None:
        base = base.filter(seq__lt=before_seq)
    if after_seq is not None:
        page = messages_with_details(base.order_by("seq")[offset : offset + limit])
    else:
        page = messages_with_details(base.order_by("-seq")[offset : offset + limit])
        page.reverse()
    return Page(messages=page, total=_history_total(session=session, parent_id=parent_id))


def _history_total(*, session: ChatSession, parent_id=None) -> int:
    """The messages of the session's timeline, or of the thread under ``parent_id``,
    tombstones included (history lists them).

    Read from the counters each send moves in its own transaction (``message_count``, as of
    when ``session`` was loaded, and the thread root's ``reply_count``), not counted: a
    ``COUNT(*)`` grows with the session and would be most of a history page's time in a
    large one.
    """
    if parent_id is None:
        return session.message_count
    replies = Message.objects.filter(pk=parent_id, session=session).values_list(
        "reply_count", flat=True
    )
    return next(iter(replies), 0)


def thread_replies(*, parent: Message) -> list[Message]:
    return messages_with_details(detailed_messages().filter(parent=parent).order_by("seq"))


def message_search(*, session: ChatSession, query: str, limit: int = 20, offset: int = 0) -> Page:
    """Messages of the session matching ``query``, newest first (as in Zulip), served from
    its newest ``SEARCH_MATCHES_MAX`` matches only.

    ``total`` is exact up to the cap and the cap beyond it (one capped ``COUNT``); an
    ``offset`` at or past it gives an empty page. Newest first needs no ranking, which would
    read the vector of every match to score it: for a common word, most of a search's time
    (docs/benchmarks.md).
    """
    # The count reads the matches newest first, as the page does: for a common word the
    # planner then walks the session's own ``seq`` index down to the 1,000th match, where
    # unordered it read a bitmap of that word's matches in every session, or the table.
    # It counts plain rows: the page's loading (``detailed_messages``) would run for each.
    matched = _search_matches(Message.objects.all(), session=session, query=query)
    total = matched.order_by("-seq")[:SEARCH_MATCHES_MAX].count()
    end = min(offset + limit, total)
    if offset >= end:
        return Page(messages=[], total=total)
    page = _search_matches(detailed_messages(), session=session, query=query)
    return Page(messages=messages_with_details(page.order_by("-seq")[offset:end]), total=total)


def _search_matches(
    messages: QuerySet[Message], *, session: ChatSession, query: str
) -> QuerySet[Message]:
    """The session's live ``messages`` matching ``query`` (``chat.search``)."""
    return messages_matching(messages.filter(session=session, is_deleted=False), query)


def reactions_for_message(*, message: Message) -> list[Reaction]:
    """The message's reactions; none for a deleted one, as its tombstone shows."""
    if message.is_deleted:
        return []
    return list(Reaction.objects.filter(message=message).order_by("created_at", "id"))


def events_after(*, session_id, last_seq: int, limit: int = 500) -> tuple[list[dict], bool]:
    """Durable event frames with seq > ``last_seq``, in order, at most ``limit``; and whether
    more remain."""
    frames = list(
        SessionEvent.objects.filter(session_id=session_id, seq__gt=last_seq)
        .order_by("seq")
        .values_list("frame", flat=True)[: limit + 1]
    )
    return frames[:limit], len(frames) > limit


def membership_notify_get(*, user, session_id) -> str:
    """The caller's ``notify`` in the session: NOT_FOUND or FORBIDDEN as for any read. One
    query."""
    mine = Membership.objects.filter(session=OuterRef("pk"), user_id=user.pk)
    row = (
        _with_membership(user=user, session_id=session_id)
        .annotate(notify=Subquery(mine.values("notify")[:1]))
        .values("caller_is_member", "notify")
        .first()
    )
    _admit(row["caller_is_member"] if row is not None else None)
    return row["notify"]


def _unread_by_session(rows: QuerySet, *, user, session_id, author: str, count) -> dict:
    """Per session id: ``count`` of ``rows`` (of the user's sessions) by others, after the
    member's read watermark (of one session with ``session_id``). ``author``: the lookup of
    a row's author id."""
    watermark = Membership.objects.filter(session=OuterRef("session"), user_id=user.pk)
    if session_id is not None:
        rows = rows.filter(session_id=session_id)
    rows = (
        rows.exclude(**{author: user.pk})
        .filter(seq__gt=Subquery(watermark.values("last_seen_seq")[:1]))
        .values("session_id")
        .annotate(n=count)
    )
    return {row["session_id"]: row["n"] for row in rows}


def unread_counts(*, user, session_id=None) -> dict:
    """Per session id: messages by others after the member's read watermark, not deleted
    (of one session with ``session_id``)."""
    rows = Message.objects.filter(session__memberships__user_id=user.pk, is_deleted=False)
    return _unread_by_session(
        rows, user=user, session_id=session_id, author="author_id", count=Count("id")
    )


def unread_mention_counts(*, user, session_id=None) -> dict:
    """Per session id: messages by others naming the user after the member's read
    watermark, not deleted (a message naming them twice counts once). Read from the
    ``Mention`` rows (their ``seq`` is their message's): a session the user left has no
    watermark, so none of its mentions count."""
    rows = Mention.objects.filter(user_id=user.pk, message__is_deleted=False)
    return _unread_by_session(
        rows,
        user=user,
        session_id=session_id,
        author="message__author_id",
        count=Count("message_id", distinct=True),
    )


def sessions_with_unread(*, user, sessions: list[ChatSession]) -> list[ChatSession]:
    """The sessions (their memberships prefetched), each with what the caller has not read
    (``unread_count``, ``unread_mention_count``) and their ``notify``: two queries for any
    number of sessions (one session's alone when there is one)."""
    only = sessions[0].pk if len(sessions) == 1 else None
    unread = unread_counts(user=user, session_id=only) if sessions else {}
    mentions = unread_mention_counts(user=user, session_id=only) if sessions else {}
    for session in sessions:
        session.unread_count = unread.get(session.pk, 0)
        session.unread_mention_count = mentions.get(session.pk, 0)
        mine = next((m for m in session.memberships.all() if m.user_id == user.pk), None)
        session.notify = mine.notify if mine is not None else Membership.Notify.MENTIONS
    return sessions


@dataclass(frozen=True)
class MentionPage:
    messages: list[Message]
    total: int


def mentions_for_user(*, user, limit: int = 50, offset: int = 0) -> MentionPage:
    """Messages by others naming the user, newest first, in the sessions they are still a
    member of, deleted ones left out; each with ``session_title``. Two queries (the count,
    the page by ``messages_with_details``), whatever the sessions."""
    named = Mention.objects.filter(user_id=user.pk).values("message_id")
    mine = Membership.objects.filter(session=OuterRef("session"), user_id=user.pk)

    def mentioning(messages: QuerySet[Message]) -> QuerySet[Message]:
        return (
            messages.filter(pk__in=Subquery(named), is_deleted=False)
            .filter(Exists(mine))
            .exclude(author_id=user.pk)
        )

    total = mentioning(Message.objects.all()).count()
    if offset >= total:
        return MentionPage(messages=[], total=total)
    newest = (
        mentioning(detailed_messages())
        .annotate(session_title=F("session__title"))
        .order_by("-created_at", "-seq")
    )
    return MentionPage(messages=messages_with_details(newest[offset : offset + limit]), total=total)


def _message_row_for_member(*, user, message_id: uuid.UUID, fields: tuple[str, ...]) -> dict:
    """The message's ``fields``, if ``user`` is a member of its session: NOT_FOUND if
    unknown, FORBIDDEN if not a member. One query."""
    mine = Membership.objects.filter(session=OuterRef("session"), user_id=user.pk)
    row = (
        Message.objects.filter(pk=message_id)
        .annotate(caller_is_member=Exists(mine))
        .values(*fields, "caller_is_member")
        .first()
    )
    if row is None:
        raise not_found("Message")
    if not row["caller_is_member"]:
        raise forbidden("You are not a member of this message's session.")
    return row


@dataclass(frozen=True)
class MessageReceipts:
    """Who has seen a message and who has it delivered but not seen."""

    message_id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    seen_by: list
    delivered_to: list


def message_receipts(*, user, message_id) -> MessageReceipts:
    """The members other than the caller and the author whose watermarks reached the
    message, if ``user`` is a member of its session. Two queries, however many members."""
    message_id = _as_uuid(message_id, "Message")
    row = _message_row_for_member(
        user=user, message_id=message_id, fields=("session_id", "seq", "author_id")
    )
    readers = (
        Membership.objects.filter(session_id=row["session_id"], last_delivered_seq__gte=row["seq"])
        .exclude(user_id__in=[uid for uid in (user.pk, row["author_id"]) if uid is not None])
        .select_related("user")
        .order_by("user__username")
    )
    seen_by, delivered_to = [], []
    for member in readers:
        (seen_by if member.last_seen_seq >= row["seq"] else delivered_to).append(member.user)
    return MessageReceipts(message_id, row["session_id"], row["seq"], seen_by, delivered_to)


def session_pins(*, session: ChatSession) -> list[Message]:
    """The session's pinned messages, newest pin first, each loaded with its pin
    (``message_details.loaded_pin``): one statement on PostgreSQL, whatever their number."""
    pinned = detailed_messages().filter(pin__session=session)
    return messages_with_details(pinned.order_by("-pin__pinned_at", "-seq"))


@dataclass(frozen=True)
class MessageVersion:
    content: str
    edited_by: object | None
    at: object


@dataclass(frozen=True)
class MessageVersions:
    message_id: uuid.UUID
    versions: list[MessageVersion]


def message_versions(*, user, message_id) -> MessageVersions:
    """Every version of a message's text, oldest first and the current one last, if ``user``
    is a member of its session. Each ``MessageEdit`` keeps the text an edit replaced: the
    first is the message as sent, each later one was written by the edit before it. A
    deleted message has none: its text is no member's to read (staff see the rows in the
    admin). Two queries."""
    message_id = _as_uuid(message_id, "Message")
    row = _message_row_for_member(
        user=user,
        message_id=message_id,
        fields=("content", "created_at", "edited_at", "is_deleted"),
    )
    if row["is_deleted"]:
        return MessageVersions(message_id, [])
    edits = list(
        MessageEdit.objects.filter(message_id=message_id)
        .select_related("editor")
        .only("previous_content", "edited_at", "editor__username")
        .order_by("edited_at", "id")
    )
    texts = [edit.previous_content for edit in edits] + [row["content"]]
    # Version n was written by edit n - 1; the first by no edit, when the message was sent.
    writers = [(None, row["created_at"])] + [(edit.editor, edit.edited_at) for edit in edits]
    if edits and row["edited_at"]:
        # The current text's time is the message's ``editedAt``, as clients show it.
        writers[-1] = (writers[-1][0], row["edited_at"])
    versions = [
        MessageVersion(content=text, edited_by=editor, at=at)
        for text, (editor, at) in zip(texts, writers, strict=True)
    ]
    return MessageVersions(message_id, versions)
