"""REST doors of the LLM app: agents, a stream's status and metrics, a query answered whole
and the Ollama server's models. Parse, call a selector or service, render: rules live in
``llm.services`` and ``llm.selectors``."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.throttles import EventThrottle
from chatproject.validation import validated

from .inputs import QueryInput, model_settings
from .ollama_catalog import ollama_models
from .selectors import (
    agent_get,
    agent_list,
    stream_get_for_member,
    stream_metrics,
    stream_status,
)
from .serializers import (
    AgentSerializer,
    ModelListSerializer,
    QueryResultSerializer,
    StreamMetricsSerializer,
    StreamStatusSerializer,
)
from .services.agents import agent_create, agent_delete, agent_update
from .services.query import llm_query
from .services.stream_sweeper import stream_sweep


class AgentListApi(APIView):
    @extend_schema(responses={200: AgentSerializer(many=True)})
    def get(self, request):
        return Response(AgentSerializer(agent_list(), many=True).data)

    @extend_schema(request=AgentSerializer, responses={201: AgentSerializer})
    def post(self, request):
        agent = agent_create(user=request.user, data=validated(AgentSerializer, request.data))
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    @extend_schema(responses={200: AgentSerializer})
    def get(self, request, agent_id):
        return Response(AgentSerializer(agent_get(agent_id)).data)

    @extend_schema(request=AgentSerializer, responses={200: AgentSerializer})
    def patch(self, request, agent_id):
        agent = agent_update(
            user=request.user,
            agent_id=agent_id,
            data=validated(AgentSerializer, request.data, partial=True),
        )
        return Response(AgentSerializer(agent).data)

    @extend_schema(responses={204: None})
    def delete(self, request, agent_id):
        agent_delete(user=request.user, agent_id=agent_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StreamStatusApi(APIView):
    @extend_schema(responses={200: StreamStatusSerializer})
    def get(self, request, stream_id):
        # A stream whose worker died is failed here rather than reported as running forever.
        stream = stream_sweep(stream=stream_get_for_member(user=request.user, stream_id=stream_id))
        return Response(stream_status(stream))


class StreamMetricsApi(APIView):
    @extend_schema(responses={200: StreamMetricsSerializer})
    def get(self, request, stream_id):
        stream = stream_sweep(stream=stream_get_for_member(user=request.user, stream_id=stream_id))
        return Response(stream_metrics(stream))


class QueryApi(APIView):
    """One answer, whole (tools on). The runner is async: this sync view waits for it in its
    own request thread, never on the event loop."""

    # An LLM request spends the same per-user budget whichever door asks.
    throttle_classes = [EventThrottle]
    throttle_events = {"POST": "stream:request"}

    @extend_schema(request=QueryInput, responses={200: QueryResultSerializer})
    def post(self, request):
        data = validated(QueryInput, request.data)
        result = async_to_sync(llm_query)(
            user=request.user,
            prompt=data["prompt"],
            session_id=data["sessionId"],
            agent_id=data["agentId"],
            config=model_settings(data),
        )
        return Response(result)


class ModelListApi(APIView):
    @extend_schema(responses={200: ModelListSerializer})
    def get(self, request):
        return Response(ollama_models())
