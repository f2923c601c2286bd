"""The web app's chat pages: the session list, a new session, adding a member, the room,
the caller's mentions.

Server-rendered with Django templates and the session cookie; the room page then runs
live over ``/ws/chat/`` (``static/js/room.js``). Reads go through ``chat.selectors`` and
writes through ``chat.services`` like the REST and WebSocket doors, so a page can't do what
those refuse. What only pages need (each session's last message, members' read
watermarks) is read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from chatproject.errors import DomainError

from .forms import MemberAddForm, SessionCreateForm
from .models import Message
from .selectors import (
    mentions_for_user,
    message_history,
    session_get_for_member,
    session_with_members,
    sessions_for_user,
    sessions_with_unread,
)
from .serializers import MessageSerializer, iso
from .services.attachments import ALLOWED_TYPES, TEXT_TYPE, allowed_types_text
from .services.sessions import member_add, session_create
from .state import get_state

PREVIEW_CHARS = 120
# What a one-line preview leaves out of Markdown: list and heading markers, emphasis and code
# marks, fences; a link keeps its text (``[text](url)`` -> ``text``, below).
_MARKDOWN_MARKS = re.compile(
    r"(?m)^\s*(?:`{3,}|~{3,})[\w+#.-]*\s*$|^\s*(?:[-*+]|\d+[.)]|#{1,6}|>)\s+|\*\*|__|`+"
)
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]+)\]\((?:[^)\s]+)\)")
HISTORY_PAGE = 50


@dataclass(frozen=True)
class MemberView:
    id: int
    username: str
    role: str
    online: bool


@dataclass(frozen=True)
class SessionRow:
    session: object
    members: list[MemberView]
    last_message: Message | None
    unread: int
    mentions: int

    @property
    def preview(self) -> str:
        return _preview(self.last_message) if self.last_message is not None else ""

    @property
    def last_author(self) -> str:
        return _author(self.last_message) if self.last_message is not None else ""


def _preview(message: Message) -> str:
    """A message as one line of plain text, cut to ``PREVIEW_CHARS``."""
    if message.is_deleted:
        return "This message was deleted."
    text = _MARKDOWN_LINK.sub(r"\1", message.content)
    text = " ".join(_MARKDOWN_MARKS.sub(" ", text).split())
    if not text and message.role == Message.Role.ASSISTANT:
        return "The assistant is answering…"
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _author(message: Message) -> str:
    if message.author is not None:
        return message.author.username
    return "Assistant" if message.role == Message.Role.ASSISTANT else "System"


@dataclass(frozen=True)
class MentionRow:
    """A message that mentions the viewer, as the mentions page lists it."""

    message: Message

    @property
    def preview(self) -> str:
        return _preview(self.message)

    @property
    def author(self) -> str:
        return _author(self.message)

    @property
    def url(self) -> str:
        """The message in its room (``room.js`` scrolls to the ``#message-<id>`` anchor)."""
        room_url = reverse("room", kwargs={"session_id": self.message.session_id})
        return f"{room_url}#message-{self.message.pk}"


def _members(session, online: set[int]) -> list[MemberView]:
    return [
        MemberView(m.user.pk, m.user.username, m.role, m.user.pk in online)
        for m in session.memberships.all()
    ]


def _session_rows(user) -> list[SessionRow]:
    """The user's sessions with what the list shows, in a fixed number of queries."""
    last_id = Message.objects.filter(session=OuterRef("pk")).order_by("-seq").values("id")[:1]
    sessions = list(sessions_for_user(user=user).annotate(last_message_id=Subquery(last_id)))
    ids = [s.last_message_id for s in sessions if s.last_message_id]
    last = {m.pk: m for m in Message.objects.filter(pk__in=ids).select_related("author")}
    sessions_with_unread(user=user, sessions=sessions)
    member_ids = {m.user_id for s in sessions for m in s.memberships.all()}
    # The viewer is online by being here (this page's script connects them, too).
    online = get_state().online(member_ids) | {user.pk}
    return [
        SessionRow(
            session=s,
            members=_members(s, online),
            last_message=last.get(s.last_message_id),
            unread=s.unread_count,
            mentions=s.unread_mention_count,
        )
        for s in sessions
    ]


def page_slash(request):
    """A page's path without its trailing slash: go to the one with it (307 keeps a POST)."""
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect(request.path + "/" + (f"?{query}" if query else ""), status=307)


def home(request):
    """Anonymous visitors get the landing page; members their sessions."""
    if not request.user.is_authenticated:
        return render(request, "home.html")
    return render(
        request,
        "chat/session_list.html",
        {"rows": _session_rows(request.user), "form": SessionCreateForm()},
    )


@login_required
@require_http_methods(["GET", "POST"])
def session_new(request):
    form = SessionCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            session = session_create(
                creator=request.user,
                title=form.cleaned_data["title"],
                member_ids=[u.pk for u in form.cleaned_data["members"]],
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            return redirect("room", session_id=session.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "chat/session_new.html", {"form": form}, status=status)


def _room_refusal(request, error: DomainError):
    status = 404 if error.code == "NOT_FOUND" else 403
    return render(request, "chat/room_error.html", {"error": error}, status=status)


@login_required
def room(request, session_id):
    try:
        session = session_get_for_member(user=request.user, session_id=session_id)
    except DomainError as error:
        return _room_refusal(request, error)
    session = session_with_members(session.pk)
    # The seq first, then the messages: joining with this lastSeq replays anything newer,
    # so nothing between this page and its socket is lost (a repeat is applied once).
    rendered_at = timezone.now()
    page = message_history(session=session, limit=HISTORY_PAGE)
    memberships = list(session.memberships.all())
    # The viewer is online by being here (this page's script connects them, too): a reload
    # renders between the old page's close and the new page's connection.
    online = get_state().online(m.user_id for m in memberships) | {request.user.pk}
    mine = next(m for m in memberships if m.user_id == request.user.pk)
    boot = {
        "session": {
            "id": str(session.pk),
            "title": session.title,
            "lastSeq": session.last_seq,
            "agentId": str(session.agent_id) if session.agent_id else None,
        },
        "messages": MessageSerializer(page.messages, many=True).data,
        "hasOlder": page.total > len(page.messages),
        "renderedAt": iso(rendered_at),
        "me": {
            "id": request.user.pk,
            "username": request.user.username,
            "isStaff": request.user.is_staff,
            "role": mine.role,
        },
        "members": [
            {
                "id": m.user_id,
                "username": m.user.username,
                "role": m.role,
                "lastSeenSeq": m.last_seen_seq,
                "lastDeliveredSeq": m.last_delivered_seq,
                "online": m.user_id in online,
            }
            for m in memberships
        ],
        "lastSeenSeq": mine.last_seen_seq,
        "lastDeliveredSeq": mine.last_delivered_seq,
        "notify": mine.notify,
        # What an upload may be, so the page refuses a file when it is picked rather than
        # after the message has gone out without it.
        "attachments": {
            "maxBytes": settings.ATTACHMENT_MAX_BYTES,
            "types": [*ALLOWED_TYPES, TEXT_TYPE],
            "typesText": allowed_types_text(),
        },
    }
    others = [r for r in _session_rows(request.user) if r.session.pk != session.pk]
    return render(
        request,
        "chat/room.html",
        {
            "session": session,
            "members": _members(session, online),
            "boot": boot,
            "other_rows": others,
            "member_form": MemberAddForm(),
        },
    )


@login_required
@require_POST
def room_member_add(request, session_id):
    form = MemberAddForm(request.POST)
    target = reverse("room", kwargs={"session_id": session_id})
    if not form.is_valid():
        flash.error(request, " ".join(form.errors.get("username", ["Give a username."])))
        return redirect(target)
    user = form.cleaned_data["username"]
    try:
        _, created = member_add(user=request.user, session_id=session_id, user_id=user.pk)
    except DomainError as error:
        if error.code in ("NOT_FOUND", "FORBIDDEN"):
            return _room_refusal(request, error)
        flash.error(request, error.message)
        return redirect(target)
    if created:
        flash.success(request, f"{user.username} was added to the session.")
    else:
        flash.info(request, f"{user.username} is already a member.")
    return redirect(target)


MENTIONS_PAGE = 50


@login_required
def mentions(request):
    """The messages that mention the caller, newest first, each linking to it in its room."""
    try:
        page_number = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page_number = 1
    page = mentions_for_user(
        user=request.user, limit=MENTIONS_PAGE, offset=(page_number - 1) * MENTIONS_PAGE
    )
    return render(
        request,
        "chat/mentions.html",
        {
            "rows": [MentionRow(message) for message in page.messages],
            "total": page.total,
            "page_number": page_number,
            "has_next": page_number * MENTIONS_PAGE < page.total,
        },
    )
