"""Incoming webhooks on the wire: the hook object, and what creating and posting accept."""

from __future__ import annotations

from rest_framework import serializers

from accounts.serializers import UserSerializer

from .serializers import ContentField


class WebhookSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    sessionId = serializers.UUIDField(source="session_id", read_only=True)
    name = serializers.CharField(read_only=True)
    bot = UserSerializer(read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", read_only=True, allow_null=True)


class WebhookCreatedSerializer(WebhookSerializer):
    url = serializers.URLField(
        read_only=True, help_text="The hook's secret URL: shown this once, never stored."
    )


class WebhookCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class WebhookPostInput(serializers.Serializer):
    content = ContentField()
    username = serializers.CharField(
        max_length=80,
        required=False,
        allow_blank=True,
        default="",
        help_text="Shown as the author's name of this post; the hook's name when left out.",
    )


class WebhookPostedSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    seq = serializers.IntegerField(read_only=True)
