"""Agents (a named model configuration for a room) and streams (one LLM answer being made
in a room, with what it cost)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

ERROR_MESSAGE_MAX = 500


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    model = models.CharField(max_length=200, blank=True, help_text="Empty: OLLAMA_MODEL.")
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stream(models.Model):
    """One streamed answer in a session.

    The row is written when the stream is requested and when it ends, never per chunk
    (TRAPS: a write per chunk collapses throughput); while it runs, its text and counters
    live in the shared state (``llm.stream_state``).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETED = "completed"
        STOPPED = "stopped"
        FAILED = "failed"

    FINAL = (Status.COMPLETED, Status.STOPPED, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        "chat.ChatSession", on_delete=models.CASCADE, related_name="streams"
    )
    message = models.ForeignKey(
        "chat.Message", on_delete=models.CASCADE, related_name="streams",
        help_text="The assistant message the stream writes.",
    )  # fmt: skip
    user_message = models.ForeignKey(
        "chat.Message", on_delete=models.CASCADE, related_name="+",
        help_text="The prompt, saved as the requester's message.",
    )  # fmt: skip
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="streams"
    )
    model = models.CharField(max_length=200)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    tokens_generated = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=40, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(
        max_length=ERROR_MESSAGE_MAX, blank=True,
        help_text="The failure's words as the room was told them, so a reload reads the same.",
    )  # fmt: skip
    started_at = models.DateTimeField(default=timezone.now)
    first_token_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    chunks_sent = models.PositiveIntegerField(default=0)
    chunk_ends = models.JSONField(
        default=list, blank=True,
        help_text="Where each chunk ends in the answer's text (cumulative lengths): a client "
        "attaching with Last-Event-ID after the end gets exactly the text it missed.",
    )  # fmt: skip
    bytes_sent = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    # A regenerate streams a new version into the same message: each stream of a message is
    # one version of its answer, numbered from 1, and keeps that version's final text and
    # what it was given (``citations``) once it ends.
    version = models.PositiveIntegerField(default=1, db_default=1)
    content = models.TextField(blank=True, default="", db_default="")
    citations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["message", "version"], name="stream_version_once"),
        ]
        indexes = [
            models.Index(fields=["session", "started_at"], name="stream_session"),
            # The few streams not ended yet, which the sweeper reads on every session:join.
            models.Index(
                fields=["session"],
                name="stream_running",
                condition=models.Q(status__in=["pending", "streaming"]),
            ),
        ]

    def __str__(self) -> str:
        return f"stream {self.id} ({self.status})"


class Passage(models.Model):
    """A piece of an indexed attachment's text and its embedding, for retrieval. The vector
    is stored as packed little-endian float32 (``dimensions`` of them): searched by
    similarity in the worker, a plain store that needs no database extension."""

    session = models.ForeignKey("chat.ChatSession", on_delete=models.CASCADE, related_name="+")
    attachment = models.ForeignKey(
        "chat.Attachment", on_delete=models.CASCADE, related_name="passages"
    )
    index = models.PositiveIntegerField(help_text="Its place in the file, from 0.")
    text = models.TextField()
    embedding = models.BinaryField()
    dimensions = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["attachment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["attachment", "index"], name="passage_once"),
        ]
        indexes = [models.Index(fields=["session", "attachment"], name="passage_session")]

    def __str__(self) -> str:
        return f"{self.attachment_id}#{self.index}"
