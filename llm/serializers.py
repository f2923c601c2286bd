"""Agents on the wire (camelCase), and what creating or changing one accepts: the same
serializer renders an agent everywhere and validates both POST and PATCH bodies."""

from __future__ import annotations

from rest_framework import serializers

from .inputs import MAX_TOKENS_LIMIT
from .models import Agent
from .tools import TOOL_NAMES, unknown_tools


class AgentSerializer(serializers.ModelSerializer):
    systemPrompt = serializers.CharField(
        source="system_prompt", required=False, allow_blank=True, max_length=20000
    )
    temperature = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=2.0
    )
    maxTokens = serializers.IntegerField(
        source="max_tokens", required=False, allow_null=True, min_value=1,
        max_value=MAX_TOKENS_LIMIT,
    )  # fmt: skip
    tools = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=len(TOOL_NAMES)
    )

    class Meta:
        model = Agent
        fields = ["id", "name", "model", "systemPrompt", "temperature", "maxTokens", "tools"]
        read_only_fields = ["id"]
        extra_kwargs = {"model": {"required": False, "allow_blank": True}}

    def validate_tools(self, value: list[str]) -> list[str]:
        if unknown := unknown_tools(value):
            raise serializers.ValidationError(
                f"Unknown tools {unknown}: choose from {list(TOOL_NAMES)}."
            )
        return list(dict.fromkeys(value))


class StreamStatusSerializer(serializers.Serializer):
    """``GET /api/chat/streams/:id/status`` (for the schema; ``llm.selectors`` builds it)."""

    streamId = serializers.UUIDField()
    sessionId = serializers.UUIDField()
    messageId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["pending", "streaming", "completed", "stopped",
                                              "failed"])  # fmt: skip
    progress = serializers.FloatField()
    tokensGenerated = serializers.IntegerField()
    startedAt = serializers.DateTimeField()
    completedAt = serializers.DateTimeField(allow_null=True)
    model = serializers.CharField()


class StreamMetricsSerializer(serializers.Serializer):
    """``GET /api/chat/streams/:id/metrics`` (for the schema)."""

    streamId = serializers.UUIDField()
    totalTokens = serializers.IntegerField()
    promptTokens = serializers.IntegerField()
    tokensPerSecond = serializers.FloatField()
    latency = serializers.IntegerField(allow_null=True, help_text="ms to the first token")
    durationMs = serializers.IntegerField()
    bandwidth = serializers.IntegerField(help_text="bytes of stream:chunk frames sent")
    chunksSent = serializers.IntegerField()
    errors = serializers.IntegerField()


class ToolCallSerializer(serializers.Serializer):
    name = serializers.CharField()
    args = serializers.DictField()
    result = serializers.CharField()


class QueryResultSerializer(serializers.Serializer):
    """``POST /api/llm/query`` (for the schema; ``llm.services.query`` builds it)."""

    content = serializers.CharField()
    model = serializers.CharField()
    tokens = serializers.IntegerField(help_text="tokens generated")
    promptTokens = serializers.IntegerField()
    toolCalls = ToolCallSerializer(many=True)


class OllamaModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    modifiedAt = serializers.CharField(allow_null=True)
    family = serializers.CharField(allow_null=True)
    parameterSize = serializers.CharField(allow_null=True)
    quantizationLevel = serializers.CharField(allow_null=True)


class ModelListSerializer(serializers.Serializer):
    """``GET /api/llm/models`` (for the schema)."""

    models = OllamaModelSerializer(many=True)
    defaultModel = serializers.CharField(help_text="OLLAMA_MODEL")
