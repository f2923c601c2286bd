"""Chat objects on the wire, in camelCase, and the inputs both doors validate.

The output serializers are the one rendering of a session, message, reaction summary and
attachment, for REST responses and WebSocket frames alike. The input serializers check a
REST body and a WebSocket ``data`` object with the same rules.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserSerializer, render_user
from chatproject.json_depth import nested_too_deep
from chatproject.reused_serializer import ReusedSerializer

from .frame_size import encoded_size
from .message_details import loaded_pin
from .models import Attachment, ChatSession, Membership, Message
from .selectors import SEARCH_MATCHES_MAX

_DATETIME = serializers.DateTimeField()


def iso(value) -> str | None:
    """A datetime as the wire renders it (ISO-8601 UTC, ``Z``)."""
    return _DATETIME.to_representation(value) if value else None


class AttachmentSerializer(serializers.ModelSerializer):
    fileName = serializers.CharField(source="file_name")
    fileUrl = serializers.SerializerMethodField()
    mimeType = serializers.CharField(source="mime_type")
    fileSize = serializers.IntegerField(source="file_size")
    createdAt = serializers.DateTimeField(source="created_at")
    # Indexing for the assistant's retrieval: "" (never indexed: links, other types),
    # pending, indexing, ready or failed (with the reason).
    indexStatus = serializers.CharField(source="index_status")
    indexError = serializers.CharField(source="index_error")

    class Meta:
        model = Attachment
        fields = [
            "id", "fileName", "fileUrl", "mimeType", "fileSize", "metadata", "createdAt",
            "indexStatus", "indexError",
        ]  # fmt: skip

    def get_fileUrl(self, obj: Attachment) -> str:
        return attachment_url(obj)


def attachment_url(attachment: Attachment) -> str:
    """Where an attachment is read: our download path for an upload, else its link."""
    if attachment.file:
        return reverse("attachment-download", kwargs={"attachment_id": attachment.id})
    return attachment.file_url


def reaction_summary(reactions) -> list[dict[str, Any]]:
    """``[{emoji, count, userIds}]`` in order of each emoji's first use."""
    grouped: OrderedDict[str, list[int]] = OrderedDict()
    for reaction in reactions:
        grouped.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [{"emoji": e, "count": len(ids), "userIds": ids} for e, ids in grouped.items()]


class MessageSerializer(serializers.ModelSerializer):
    """A message as the contract renders it. Expects ``author`` loaded with it, its
    reactions and attachments as the lists ``reaction_list`` and ``attachment_list``, and
    its mentions rendered as ``mention_list`` (see ``selectors.messages_with_details``; a
    message just created gets them from ``chat.services.mentions.mentions_prepare``)."""

    sessionId = serializers.UUIDField(source="session_id")
    author = UserSerializer(allow_null=True)
    agentId = serializers.UUIDField(source="agent_id", allow_null=True)
    parentMessageId = serializers.UUIDField(source="parent_id", allow_null=True)
    replyCount = serializers.IntegerField(source="reply_count")
    isEdited = serializers.BooleanField(source="is_edited")
    editedAt = serializers.DateTimeField(source="edited_at", allow_null=True)
    isDeleted = serializers.BooleanField(source="is_deleted")
    deletedAt = serializers.DateTimeField(source="deleted_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    reactions = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(source="attachment_list", many=True)
    clientId = serializers.CharField(source="client_id", allow_null=True)
    isBot = serializers.SerializerMethodField()
    pinnedAt = serializers.SerializerMethodField()
    pinnedBy = serializers.SerializerMethodField()
    mentions = serializers.SerializerMethodField(
        help_text="The members it names: [{user, offset, length}] in text order; offset and "
        "length count UTF-16 code units of content (the @ included)."
    )

    class Meta:
        model = Message
        fields = [
            "id", "sessionId", "seq", "author", "agentId", "role", "content", "metadata",
            "tokens", "parentMessageId", "replyCount", "isEdited", "editedAt", "isDeleted",
            "deletedAt", "createdAt", "updatedAt", "reactions", "attachments", "clientId",
            "isBot", "pinnedAt", "pinnedBy", "mentions",
        ]  # fmt: skip

    def get_reactions(self, obj: Message) -> list[dict[str, Any]]:
        return reaction_summary(obj.reaction_list)

    def get_isBot(self, obj: Message) -> bool:
        # A bot account's message (a webhook's too: its metadata.webhook names it).
        return obj.author is not None and obj.author.is_bot

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_pinnedAt(self, obj: Message) -> str | None:
        return _pinned_at(loaded_pin(obj))

    @extend_schema_field(UserSerializer(allow_null=True))
    def get_pinnedBy(self, obj: Message) -> dict[str, Any] | None:
        return _pinned_by(loaded_pin(obj))

    def get_mentions(self, obj: Message) -> list[dict[str, Any]]:
        return obj.mention_list

    def to_representation(self, instance: Message) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.is_deleted:
            # A tombstone: the row keeps its text for moderators, clients never see it.
            data.update(content="", metadata={}, reactions=[], attachments=[], mentions=[])
        return data


# What every broadcast of a message renders it with (``chatproject.reused_serializer``).
render_message = ReusedSerializer(MessageSerializer)


class HistoryPageSerializer(serializers.Serializer):
    """A page of a session's timeline or of one thread, and the size of that conversation."""

    messages = MessageSerializer(many=True, help_text="Oldest first.")
    total = serializers.IntegerField(
        help_text="Messages in the conversation the page comes from: the session's top-level "
        "messages, or the thread's replies with parentMessageId; deleted ones (tombstones) "
        "count, as history lists them. beforeSeq, afterSeq and offset don't change it."
    )


class SearchPageSerializer(serializers.Serializer):
    """A page of search results, and how many messages matched (capped)."""

    results = MessageSerializer(source="messages", many=True, help_text="Newest first.")
    total = serializers.IntegerField(
        help_text=f"Matches, counted exactly up to {SEARCH_MATCHES_MAX:,} and capped there: "
        f"{SEARCH_MATCHES_MAX:,} means that many or more."
    )


class PinSerializer(serializers.Serializer):
    """A pinned message and who pinned it when, from a message loaded with its pin
    (``selectors.session_pins``)."""

    message = MessageSerializer(source="*")
    pinnedBy = serializers.SerializerMethodField()
    pinnedAt = serializers.SerializerMethodField()

    @extend_schema_field(UserSerializer(allow_null=True))
    def get_pinnedBy(self, obj: Message) -> dict[str, Any] | None:
        return _pinned_by(loaded_pin(obj))

    @extend_schema_field(serializers.DateTimeField())
    def get_pinnedAt(self, obj: Message) -> str | None:
        return _pinned_at(loaded_pin(obj))


class PinListSerializer(serializers.Serializer):
    pins = PinSerializer(many=True, help_text="Newest pin first.")


def pin_state(message: Message) -> dict[str, Any]:
    """Whether a message (loaded with its pin) is pinned now, as the ``message:pin`` and
    ``message:unpin`` acks say it: ``{sessionId, messageId, pinned, pinnedAt, pinnedBy}``."""
    pin = loaded_pin(message)
    return {
        "sessionId": str(message.session_id),
        "messageId": str(message.pk),
        "pinned": pin is not None,
        "pinnedAt": _pinned_at(pin),
        "pinnedBy": _pinned_by(pin),
    }


def _pinned_at(pin) -> str | None:
    return iso(pin.pinned_at) if pin is not None else None


def _pinned_by(pin) -> dict[str, Any] | None:
    return render_user(pin.pinned_by) if pin is not None and pin.pinned_by else None


class MessageVersionSerializer(serializers.Serializer):
    content = serializers.CharField()
    editedBy = UserSerializer(
        source="edited_by",
        allow_null=True,
        help_text="Who made this version by an edit; null for the message as first sent.",
    )
    at = serializers.DateTimeField(help_text="When this version was written.")


class MessageVersionsSerializer(serializers.Serializer):
    """A message's edit history: every version of its text."""

    messageId = serializers.UUIDField(source="message_id")
    versions = MessageVersionSerializer(
        many=True,
        help_text="Oldest first, the current text last; empty for a deleted message.",
    )


class MemberSerializer(serializers.ModelSerializer):
    """A member: the user, their role, and their read and delivery positions (every message
    with ``seq <= lastSeenSeq`` is seen, with ``seq <= lastDeliveredSeq`` delivered), so any
    client can show "Seen by" and "Delivered to" after a reload."""

    id = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")
    lastSeenSeq = serializers.IntegerField(source="last_seen_seq")
    lastDeliveredSeq = serializers.IntegerField(source="last_delivered_seq")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "lastSeenSeq", "lastDeliveredSeq"]


class MessageReceiptsSerializer(serializers.Serializer):
    """Who has read a message, and who has it without having read it yet."""

    messageId = serializers.UUIDField(source="message_id")
    sessionId = serializers.UUIDField(source="session_id")
    seq = serializers.IntegerField()
    seenBy = UserSerializer(source="seen_by", many=True, help_text="Other members who saw it.")
    deliveredTo = UserSerializer(
        source="delivered_to",
        many=True,
        help_text="Other members it reached who have not seen it yet (not those in seenBy).",
    )


class SessionHeadSerializer(serializers.ModelSerializer):
    """A session without its members: what a join renders beside members it reads as rows
    (``chat.member_rows``)."""

    createdBy = UserSerializer(source="created_by", allow_null=True)
    agentId = serializers.UUIDField(source="agent_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    lastMessageAt = serializers.DateTimeField(source="last_message_at", allow_null=True)
    lastSeq = serializers.IntegerField(source="last_seq")

    class Meta:
        model = ChatSession
        fields = ["id", "title", "createdBy", "agentId", "createdAt", "lastMessageAt", "lastSeq"]


class SessionSerializer(SessionHeadSerializer):
    members = MemberSerializer(source="memberships", many=True)

    class Meta(SessionHeadSerializer.Meta):
        fields = ["id", "title", "createdBy", "members", "agentId", "createdAt", "lastMessageAt",
                  "lastSeq"]  # fmt: skip


class SessionForMemberSerializer(SessionSerializer):
    """A session as its member reads it (``GET /sessions``, ``GET /sessions/:id``): with
    what they have not read and how they are notified (``selectors.sessions_with_unread``)."""

    unreadCount = serializers.IntegerField(
        source="unread_count", help_text="Messages by others after your read position."
    )
    unreadMentionCount = serializers.IntegerField(
        source="unread_mention_count", help_text="Those of them that mention you."
    )
    notify = serializers.ChoiceField(
        choices=Membership.Notify.choices,
        help_text="Which messages notify you: all, mentions (of you) or none.",
    )

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "unreadCount", "unreadMentionCount", "notify"]


class MentionResultSerializer(MessageSerializer):
    """A message that mentions the caller, with its session's title."""

    sessionTitle = serializers.CharField(source="session_title")

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "sessionTitle"]


class MentionPageSerializer(serializers.Serializer):
    results = MentionResultSerializer(source="messages", many=True, help_text="Newest first.")
    total = serializers.IntegerField(help_text="Messages that mention you, in all.")


class NotifySerializer(serializers.Serializer):
    """A member's notification setting in a session."""

    sessionId = serializers.UUIDField()
    notify = serializers.ChoiceField(choices=Membership.Notify.choices)


# --- Inputs --------------------------------------------------------------------------------

# Ids, seqs and offsets are 64-bit in the database: a larger number is refused here, not by
# the driver (an overflow there is a 500).
BIGINT_MAX = 2**63 - 1


class IdField(serializers.UUIDField):
    """A UUID sent as a string, as every id is on the wire: DRF's UUIDField would also take
    the number 5 as ``UUID(int=5)``."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ContentField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", settings.MESSAGE_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            # CharField would turn 123 into "123": a message's text must be sent as a string.
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not value.strip():
            raise serializers.ValidationError("A message needs some text.")
        return value


class SessionCreateInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    memberIds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        required=False,
        default=list,
        max_length=500,
    )
    agentId = IdField(required=False, allow_null=True, default=None)


class SessionUpdateInput(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    agentId = IdField(required=False, allow_null=True)


class MemberAddInput(serializers.Serializer):
    userId = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class MessageSendInput(serializers.Serializer):
    sessionId = IdField()
    content = ContentField()
    parentMessageId = IdField(required=False, allow_null=True, default=None)
    clientId = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)


class MessageEditInput(serializers.Serializer):
    content = ContentField()


class MessageRefInput(serializers.Serializer):
    messageId = IdField()


class MessageEditFrameInput(MessageRefInput, MessageEditInput):
    """``message:edit`` over WebSocket: the id travels in the frame, not the path."""


class NotifyInput(serializers.Serializer):
    notify = serializers.ChoiceField(
        choices=Membership.Notify.choices,
        help_text="all: every message by someone else; mentions: those naming you; none.",
    )


class NotifyFrameInput(NotifyInput):
    """``session:notify`` over WebSocket: the session travels in the frame, not the path."""

    sessionId = IdField()


class MentionsQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, default=0)


class ReactionInput(serializers.Serializer):
    emoji = serializers.CharField(max_length=64, trim_whitespace=True)


class ReactionFrameInput(MessageRefInput, ReactionInput):
    """``message:reaction`` over WebSocket."""


class HistoryQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)
    offset = serializers.IntegerField(
        min_value=0,
        max_value=BIGINT_MAX,
        default=0,
        help_text="Messages to skip: from the newest, or with afterSeq from the oldest.",
    )
    parentMessageId = IdField(
        required=False,
        allow_null=True,
        default=None,
        help_text="A thread's root message: page through its replies instead.",
    )
    afterSeq = serializers.IntegerField(
        min_value=0,
        max_value=BIGINT_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text="Catch up: the oldest messages with a greater seq.",
    )
    beforeSeq = serializers.IntegerField(
        min_value=1,
        max_value=BIGINT_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text="Scroll back (keyset): the newest messages with a smaller seq.",
    )


class SearchQuery(serializers.Serializer):
    query = serializers.CharField(max_length=200, help_text="Words that must all occur.")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    offset = serializers.IntegerField(
        min_value=0,
        max_value=BIGINT_MAX,
        default=0,
        help_text=f"Results to skip, newest first. Only the newest {SEARCH_MATCHES_MAX:,} "
        f"matches are served: an offset of {SEARCH_MATCHES_MAX:,} or more gives no results.",
    )


# An attachment's ``metadata`` is the client's own (a link preview's title, an image's size):
# it is kept small and shallow, so that it fits in every frame that carries its message
# (CONTRACT section 3, "Frame size").
METADATA_MAX_BYTES = 8192
METADATA_MAX_DEPTH = 5


class MetadataField(serializers.DictField):
    """A JSON object of at most ``METADATA_MAX_BYTES`` (encoded) and ``METADATA_MAX_DEPTH``
    levels of objects and arrays, the outer object included."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if nested_too_deep(value, METADATA_MAX_DEPTH):
            raise serializers.ValidationError(
                f"metadata can nest objects and arrays at most {METADATA_MAX_DEPTH} deep."
            )
        try:
            size = encoded_size(value)
        except orjson.JSONEncodeError as exc:
            # Frames are encoded with orjson, which takes integers of at most 64 bits.
            raise serializers.ValidationError(
                "metadata numbers must be at most 64-bit integers or decimals."
            ) from exc
        if size > METADATA_MAX_BYTES:
            raise serializers.ValidationError(
                f"metadata can be at most {METADATA_MAX_BYTES} bytes of JSON "
                f"({METADATA_MAX_BYTES // 1024} KiB)."
            )
        return value


class AttachmentUrlInput(serializers.Serializer):
    fileName = serializers.CharField(max_length=255)
    fileUrl = serializers.URLField(max_length=2000)
    mimeType = serializers.RegexField(r"^[\w.+-]+/[\w.+-]+$", max_length=127)
    fileSize = serializers.IntegerField(min_value=0, required=False, default=0)
    metadata = MetadataField(required=False, default=dict)

    def validate_fileUrl(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Only http and https links can be attached.")
        return value

    def validate_fileSize(self, value: int) -> int:
        if value > settings.ATTACHMENT_MAX_BYTES:
            raise serializers.ValidationError(
                f"At most {settings.ATTACHMENT_MAX_BYTES} bytes can be attached."
            )
        return value


class ExportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=["json", "md"],
        default="json",
        help_text="json: one object {session, exportedAt, messages}; md: a Markdown transcript.",
    )
