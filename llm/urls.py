"""``/api/llm/``: agents, the Ollama server's models, and a query answered whole."""

from django.urls import re_path

from chat.urls import UUID

from . import api

urlpatterns = [
    re_path(r"^agents/?$", api.AgentListApi.as_view(), name="agent-list"),
    re_path(rf"^agents/(?P<agent_id>{UUID})/?$", api.AgentDetailApi.as_view(), name="agent-detail"),
    re_path(r"^models/?$", api.ModelListApi.as_view(), name="llm-models"),
    re_path(r"^query/?$", api.QueryApi.as_view(), name="llm-query"),
]
