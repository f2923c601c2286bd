"""Moderation admin for chat: sessions, messages and what hangs off them.

The admin reads freely but writes through the services wherever clients must hear about a
change: soft-delete and restore are actions that call ``message_delete`` /
``message_restore``, so they take the next seq and broadcast like any other delete or edit.
Everything else a client sees (a message's fields, reactions, attachments, the members' read
and delivery watermarks, the event log) is read-only here: a write from the admin would reach
no client, and a hard delete would cascade into the event log and leave holes in the seqs
clients replay. Moderators remove a message by soft-deleting it, which also hides its
attachments and reactions.

Editable foreign keys are autocomplete widgets and changelists select their related rows, so
no page loads every user, session or message. A session's agent, which chat names by id only
(the LLM app owns agents), is picked by name from the agents ``chat.extensions`` knows.
"""

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.formats import date_format
from django.utils.text import Truncator
from django.utils.timezone import localtime

from chatproject.errors import DomainError

from . import admin_webhooks  # noqa: F401 (registers the webhooks admin)
from .extensions import agent_choices
from .models import (
    Attachment,
    ChatSession,
    Membership,
    Message,
    MessageEdit,
    Reaction,
    SessionEvent,
)
from .services.messages import message_delete, message_restore


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only services write: moderators inspect them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("joined_at", "last_seen_seq", "last_delivered_seq")


class ChatSessionForm(forms.ModelForm):
    """The session's agent as a choice of the agents there are, by name: only an agent's id
    can be saved."""

    agent_id = forms.TypedChoiceField(
        label="Agent", required=False, coerce=uuid.UUID, empty_value=None
    )

    class Meta:
        model = ChatSession
        fields = ("title", "created_by", "agent_id")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(str(agent_id), name) for agent_id, name in agent_choices()]
        self.fields["agent_id"].choices = [("", "---------"), *choices]


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    form = ChatSessionForm
    list_display = ("title", "created_by", "member_count", "last_message_at", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("title",)
    autocomplete_fields = ("created_by",)
    # last_seq and message_count are the session's counters: only seq_allocate may move them.
    readonly_fields = ("id", "last_seq", "message_count", "created_at", "last_message_at")
    inlines = (MembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, session):
        return session.member_count


class MessageEditInline(admin.TabularInline):
    """The message's earlier versions, oldest first: its edit history, not editable."""

    model = MessageEdit
    extra = 0
    can_delete = False
    fields = ("edited_at", "editor", "previous_content")
    readonly_fields = fields
    verbose_name_plural = "edit history"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    # Columns that fit beside the admin's menu and filters at 1280 px: the text first (the
    # link to the message), short words for its state; seq and ids are on the message's page.
    list_display = ("short_content", "author_name", "room", "role", "state", "sent")
    list_display_links = ("short_content",)
    list_select_related = ("session", "author")
    list_filter = ("session", "author", "is_deleted", "is_flagged", "role")
    search_fields = ("content", "author__username")
    ordering = ("-created_at",)
    # A COUNT(*) of the whole table on every filtered page costs more than it tells.
    show_full_result_count = False
    # Only is_flagged is editable: content changes go through message_edit (history and a
    # broadcast), deletes through the actions, and the foreign keys render as plain links.
    readonly_fields = (
        "id",
        "session",
        "seq",
        "author",
        "agent_id",
        "role",
        "content",
        "metadata",
        "tokens",
        "parent",
        "reply_count",
        "is_edited",
        "edited_at",
        "is_deleted",
        "deleted_at",
        "client_id",
        "created_at",
        "updated_at",
    )
    inlines = (MessageEditInline,)
    actions = ("soft_delete", "restore")

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="content")
    def short_content(self, message):
        if message.is_deleted:
            return "(deleted)"
        return Truncator(message.content).chars(60) or "(no text)"

    @admin.display(description="author", ordering="author__username")
    def author_name(self, message):
        return Truncator(message.author.username).chars(20) if message.author else "-"

    @admin.display(description="room", ordering="session__title")
    def room(self, message):
        return Truncator(message.session.title).chars(30)

    @admin.display(description="state")
    def state(self, message):
        words = [
            word
            for word, on in (
                ("deleted", message.is_deleted),
                ("flagged", message.is_flagged),
                ("edited", message.is_edited),
            )
            if on
        ]
        return ", ".join(words) or "-"

    @admin.display(description="sent", ordering="created_at")
    def sent(self, message):
        return date_format(localtime(message.created_at), "Y-m-d H:i")

    @admin.action(description="Soft-delete (broadcasts)", permissions=["change"])
    def soft_delete(self, request, queryset):
        self._apply(
            request,
            queryset.filter(is_deleted=False),
            lambda pk: message_delete(user=request.user, message_id=pk),
            "Deleted",
        )

    @admin.action(description="Restore (broadcasts)", permissions=["change"])
    def restore(self, request, queryset):
        self._apply(
            request,
            queryset.filter(is_deleted=True),
            lambda pk: message_restore(moderator=request.user, message_id=pk),
            "Restored",
        )

    def _apply(self, request, queryset, service, verb: str) -> None:
        """Call ``service`` once per message (each in its own transaction, so each broadcast
        follows its own commit) and report what happened."""
        done = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                service(pk)
            except DomainError as exc:
                self.message_user(request, f"Message {pk}: {exc.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{verb} {done} message(s).", messages.SUCCESS)


@admin.register(Reaction)
class ReactionAdmin(ReadOnlyAdmin):
    list_display = ("emoji", "message", "user", "created_at")
    list_select_related = ("message", "user")
    search_fields = ("emoji", "user__username")


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ("file_name", "message", "uploaded_by", "mime_type", "file_size", "created_at")
    list_select_related = ("message", "uploaded_by")
    list_filter = ("mime_type",)
    search_fields = ("file_name", "uploaded_by__username")
    # Listed, so the admin needn't build a form just to find them (whose URLField warns
    # about Django 6's change of default scheme).
    fields = (
        "id",
        "message",
        "uploaded_by",
        "file_name",
        "file",
        "file_url",
        "mime_type",
        "file_size",
        "metadata",
        "created_at",
    )


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    """The event log exactly as clients replay it."""

    list_display = ("session", "seq", "event", "message", "created_at")
    list_select_related = ("session", "message")
    list_filter = ("event",)
    search_fields = ("session__title",)
    # Newest first by primary key: the same order as created_at, but indexed.
    ordering = ("-id",)
    show_full_result_count = False
