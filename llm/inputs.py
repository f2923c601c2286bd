"""Inputs of the ``stream:*`` gateway events, validated by the consumer's route table."""

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
