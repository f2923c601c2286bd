"""The shape of ``GET /api/chat/messages/:id/versions``, for the schema
(``llm.answer_version_reads`` builds it)."""

from rest_framework import serializers

from accounts.serializers import UserSerializer

STATUSES = ["pending", "streaming", "completed", "stopped", "failed"]


class AnswerVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="From 1, in the order they were made.")
    streamId = serializers.UUIDField()
    content = serializers.CharField(help_text="The text this version ended with.")
    model = serializers.CharField()
    agentId = serializers.UUIDField(allow_null=True)
    requestedBy = UserSerializer(allow_null=True, help_text="Who asked for this version.")
    status = serializers.ChoiceField(choices=STATUSES)
    finishReason = serializers.CharField(allow_null=True)
    tokens = serializers.IntegerField()
    citations = serializers.ListField(child=serializers.DictField())
    startedAt = serializers.DateTimeField()
    completedAt = serializers.DateTimeField(allow_null=True)


class AnswerVersionsSerializer(serializers.Serializer):
    messageId = serializers.UUIDField()
    version = serializers.IntegerField(
        allow_null=True, help_text="The version the message shows: the newest finished one."
    )
    versions = AnswerVersionSerializer(many=True, help_text="Oldest first; [] once deleted.")
