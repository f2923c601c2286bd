"""``/api/chat/messages/:id/{regenerate,resend,versions}``: an answer's versions, served by
the LLM app under the chat API's paths (as the stream routes are, ``llm.stream_urls``)."""

from django.urls import re_path

from chat.urls import UUID

from . import api_versions

urlpatterns = [
    re_path(
        rf"^(?P<message_id>{UUID})/regenerate/?$",
        api_versions.regenerate_view,
        name="message-regenerate",
    ),
    re_path(rf"^(?P<message_id>{UUID})/resend/?$", api_versions.resend_view, name="message-resend"),
    re_path(
        rf"^(?P<message_id>{UUID})/versions/?$",
        api_versions.AnswerVersionsApi.as_view(),
        name="message-versions",
    ),
]
