"""Inputs of the LLM doors: the ``stream:*`` gateway events, ``/api/stream``, ``/ws/ai/``
and ``/api/llm/query``. The same serializers validate a REST body and a WebSocket ``data``."""

from django.conf import settings
from rest_framework import serializers

from chat.serializers import ContentField, IdField

MAX_TOKENS_LIMIT = 32768


class StreamConfigInput(serializers.Serializer):
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False)
    maxTokens = serializers.IntegerField(min_value=1, max_value=MAX_TOKENS_LIMIT, required=False)


class StreamRequestInput(serializers.Serializer):
    sessionId = IdField()
    prompt = ContentField()
    agentId = IdField(required=False, allow_null=True, default=None)
    parentMessageId = IdField(required=False, allow_null=True, default=None)
    config = StreamConfigInput(required=False, allow_null=True, default=None)


class StreamStopInput(serializers.Serializer):
    streamId = IdField()


def model_settings(data: dict) -> dict:
    """The ``{model, temperature, maxTokens}`` a door's input names, for ``model_config``."""
    return {key: data.get(key) for key in ("model", "temperature", "maxTokens")}


class ModelSettingsInput(serializers.Serializer):
    """The model settings a request may name; the agent's or the platform's apply otherwise."""

    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False)
    maxTokens = serializers.IntegerField(min_value=1, max_value=MAX_TOKENS_LIMIT, required=False)


# --- /api/stream (seed 003) ---------------------------------------------------------------

WIRE_ROLES = ("system", "user", "assistant", "tool")
MAX_WIRE_MESSAGES = 200


class TextField(serializers.CharField):
    """Text that must be sent as a string (CharField would take 123 as "123")."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", settings.MESSAGE_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class WireMessageInput(serializers.Serializer):
    """One message of the conversation the client sends; other keys (``id``, ``timestamp``)
    are accepted and ignored."""

    role = serializers.ChoiceField(choices=WIRE_ROLES)
    content = TextField()


class StreamBodyInput(serializers.Serializer):
    messages = serializers.ListField(
        child=WireMessageInput(), min_length=1, max_length=MAX_WIRE_MESSAGES
    )
    model = serializers.CharField(max_length=200)
    chatId = IdField(required=False, allow_null=True, default=None)
    systemPrompt = TextField(max_length=20000, required=False, default="")

    def validate_messages(self, value: list[dict]) -> list[dict]:
        last = value[-1]
        if last["role"] != "user" or not last["content"].strip():
            raise serializers.ValidationError(
                "The last message must be the user's, with some text: it is what is answered."
            )
        return value


# --- /ws/ai/ (seeds 001 and 000) -----------------------------------------------------------


class ChatStartInput(ModelSettingsInput):
    message = ContentField()
    conversationId = IdField(required=False, allow_null=True, default=None)


class ChatStopInput(serializers.Serializer):
    conversationId = IdField(required=False, allow_null=True, default=None)


class PromptMessageInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user"], required=False, default="user")
    content = ContentField()


class PromptInput(serializers.Serializer):
    thread = IdField()
    message = PromptMessageInput()
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)


# --- /api/llm/query ------------------------------------------------------------------------


class QueryInput(ModelSettingsInput):
    prompt = ContentField()
    sessionId = IdField(required=False, allow_null=True, default=None)
    agentId = IdField(required=False, allow_null=True, default=None)


# --- regenerate and edit-and-resend (``llm.services.regenerate``) --------------------------


class RegenerateBodyInput(serializers.Serializer):
    """``POST /api/chat/messages/:id/regenerate``'s body (the message is in the path)."""

    agentId = IdField(required=False, allow_null=True, default=None)
    config = StreamConfigInput(required=False, allow_null=True, default=None)


class StreamRegenerateInput(RegenerateBodyInput):
    messageId = IdField()


class ResendBodyInput(serializers.Serializer):
    content = ContentField()


class MessageResendInput(ResendBodyInput):
    messageId = IdField()
