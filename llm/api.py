"""REST doors of the LLM app: agents, and a stream's status and metrics. Parse, call a
selector or service, render: rules live in ``llm.services`` and ``llm.selectors``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import (
    agent_get,
    agent_list,
    stream_get_for_member,
    stream_metrics,
    stream_status,
)
from .serializers import AgentSerializer, StreamMetricsSerializer, StreamStatusSerializer
from .services.agents import agent_create, agent_delete, agent_update


def _valid(request, *, partial: bool = False) -> dict:
    serializer = AgentSerializer(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class AgentListApi(APIView):
    @extend_schema(responses={200: AgentSerializer(many=True)})
    def get(self, request):
        return Response(AgentSerializer(agent_list(), many=True).data)

    @extend_schema(request=AgentSerializer, responses={201: AgentSerializer})
    def post(self, request):
        agent = agent_create(user=request.user, data=_valid(request))
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    @extend_schema(responses={200: AgentSerializer})
    def get(self, request, agent_id):
        return Response(AgentSerializer(agent_get(agent_id)).data)

    @extend_schema(request=AgentSerializer, responses={200: AgentSerializer})
    def patch(self, request, agent_id):
        agent = agent_update(
            user=request.user, agent_id=agent_id, data=_valid(request, partial=True)
        )
        return Response(AgentSerializer(agent).data)

    @extend_schema(responses={204: None})
    def delete(self, request, agent_id):
        agent_delete(user=request.user, agent_id=agent_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StreamStatusApi(APIView):
    @extend_schema(responses={200: StreamStatusSerializer})
    def get(self, request, stream_id):
        stream = stream_get_for_member(user=request.user, stream_id=stream_id)
        return Response(stream_status(stream))


class StreamMetricsApi(APIView):
    @extend_schema(responses={200: StreamMetricsSerializer})
    def get(self, request, stream_id):
        stream = stream_get_for_member(user=request.user, stream_id=stream_id)
        return Response(stream_metrics(stream))
