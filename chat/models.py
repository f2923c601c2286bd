"""The chat data model: sessions (rooms), members, messages and what hangs off them, and the
session event log that orders and replays every durable event.

``ChatSession.last_seq`` is the session's event counter. Each durable event takes the next
value by an ``UPDATE … SET last_seq = last_seq + 1`` in the same transaction as the change it
records: the row lock serialises writers, so seqs are gap-free and increase in commit order.
``ChatSession.message_count`` counts the session's top-level messages (tombstones included),
moved by that same ``UPDATE`` when a top-level message is created: the history's ``total``
without a ``COUNT(*)`` of the session. ``Message.reply_count`` is its thread's equivalent.

Agents belong to the LLM app, which depends on chat and never the reverse: a session or a
message names its agent by id only (``agent_id``, no relation). The LLM app checks that an
id names an agent (``chat.extensions.agent_exists``) and clears the ids of an agent it
deletes, as ``SET_NULL`` did while these were foreign keys.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ChatSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    agent_id = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="The room's default agent, if any."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_sessions"
    )
    last_seq = models.BigIntegerField(default=0)
    message_count = models.PositiveBigIntegerField(
        default=0, help_text="Top-level messages, tombstones included (the history's total)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "session"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        """The channel-layer group of this session, built from the primary key only."""
        return f"session-{self.id.hex}"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # The read watermark: every message with seq <= this is seen by the member.
    last_seen_seq = models.BigIntegerField(default=0)
    # The delivery watermark: every message with seq <= this reached one of the member's
    # clients. Never below ``last_seen_seq`` once moved: seen implies delivered. A default in
    # the database too, so bulk loads that name only the older columns still work.
    last_delivered_seq = models.BigIntegerField(default=0, db_default=0)

    class Notify(models.TextChoices):
        ALL = "all"
        MENTIONS = "mentions"
        NONE = "none"

    # Which of the session's messages notify the member (a browser notification, the tab
    # title's count): every message by someone else, only those that mention them, or none.
    notify = models.CharField(
        max_length=10, choices=Notify.choices, default=Notify.MENTIONS, db_default="mentions"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "user"], name="membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "session"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.session_id} ({self.role})"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"
        TOOL = "tool"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    agent_id = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="The agent that wrote it, if any."
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    content = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tokens = models.PositiveIntegerField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    reply_count = models.PositiveIntegerField(default=0)
    is_edited = models.BooleanField(default=False)
    edited_at = models.DateTimeField(null=True, blank=True)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    is_flagged = models.BooleanField(
        default=False, help_text="The profanity filter changed or refused words in it."
    )
    client_id = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="message_session_seq"),
            models.UniqueConstraint(
                fields=["session", "author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_once",
            ),
        ]
        indexes = [
            models.Index(fields=["session", "parent", "seq"], name="message_history"),
            models.Index(fields=["parent", "seq"], name="message_thread"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq}"


class MessageEdit(models.Model):
    """One earlier version of a message: what moderators read as its edit history."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="edits")
    previous_content = models.TextField(blank=True)
    editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    edited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["edited_at"]

    def __str__(self) -> str:
        return f"edit of {self.message_id} at {self.edited_at:%Y-%m-%d %H:%M}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions"
    )
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_once"),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id}"


def attachment_path(instance: "Attachment", filename: str) -> str:
    # The stored name is the attachment's id: the user's file name is kept in the row only.
    return f"attachments/{instance.message.session_id.hex}/{instance.id.hex}"


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    file = models.FileField(upload_to=attachment_path, null=True, blank=True)
    file_name = models.CharField(max_length=255)
    file_url = models.URLField(max_length=2000, blank=True)
    mime_type = models.CharField(max_length=127)
    file_size = models.PositiveBigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class IndexStatus(models.TextChoices):
        NONE = "", "not indexed"
        PENDING = "pending"
        INDEXING = "indexing"
        READY = "ready"
        FAILED = "failed"

    # Where the file's text stands for the assistant's retrieval: uploaded text, Markdown,
    # CSV and PDF files are indexed off the request path (pending -> indexing -> ready, or
    # failed with the reason, and retried); links and other types are never indexed.
    index_status = models.CharField(
        max_length=10, choices=IndexStatus.choices, blank=True, default="", db_default=""
    )
    index_error = models.CharField(max_length=500, blank=True, default="", db_default="")
    index_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The few attachments waiting to be indexed, which a sweeper picks up again.
            models.Index(
                fields=["index_status"],
                name="attachment_index_waiting",
                condition=Q(index_status__in=["pending", "indexing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.file_name


class SessionEvent(models.Model):
    """One durable event of a session, numbered by the session's ``seq``.

    ``frame`` holds the event exactly as it was broadcast (``{"event", "data", "seq"}``), so a
    replay by ``lastSeq`` sends clients the same bytes they would have had live.
    """

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    event = models.CharField(max_length=40)
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    frame = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="event_session_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.event}"


class Mention(models.Model):
    """One ``@username`` in a message naming a member: who, and where in the text (UTF-16
    code units, as JavaScript indexes strings). ``session`` and ``seq`` repeat the message's
    so a member's unread mentions are counted from this table alone."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions"
    )
    offset = models.PositiveIntegerField()
    length = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "offset"]
        constraints = [
            models.UniqueConstraint(fields=["message", "offset"], name="mention_once"),
        ]
        indexes = [
            models.Index(fields=["user", "session", "seq"], name="mention_unread"),
            models.Index(fields=["user", "-created_at"], name="mention_newest"),
        ]

    def __str__(self) -> str:
        return f"@{self.user_id} in {self.message_id}"


class Pin(models.Model):
    """A pinned message of a session: one pin per message, by any member."""

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, primary_key=True, related_name="pin"
    )
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="pins")
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    pinned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pinned_at"]
        indexes = [models.Index(fields=["session", "-pinned_at"], name="pin_session")]

    def __str__(self) -> str:
        return f"pin of {self.message_id}"


class IncomingWebhook(models.Model):
    """A secret URL that posts into one session as its bot user. Only a SHA-256 digest of
    the secret is stored (it has 256 random bits, so no slow hash is needed): the URL is
    shown once. A revoked hook keeps its row, so its messages still name it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="webhooks")
    bot = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks"
    )
    name = models.CharField(max_length=100)
    secret_digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "incoming webhook"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
