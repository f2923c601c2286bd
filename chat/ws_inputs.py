"""Inputs only the WebSocket door has; message inputs are shared with REST
(``chat.serializers``)."""

from rest_framework import serializers


class EmptyInput(serializers.Serializer):
    """Events with no data (``ping``)."""


class SessionRefInput(serializers.Serializer):
    sessionId = serializers.UUIDField()


class SessionJoinInput(SessionRefInput):
    lastSeq = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)


class AuthRefreshInput(serializers.Serializer):
    token = serializers.CharField(max_length=4096)
