"""``/api/chat/streams/``: a room stream's status, metrics and events (SSE, to attach to it
from anywhere), for members of its session."""

from django.urls import re_path

from chat.urls import UUID

from . import api, sse

urlpatterns = [
    re_path(
        rf"^(?P<stream_id>{UUID})/status/?$", api.StreamStatusApi.as_view(), name="stream-status"
    ),
    re_path(
        rf"^(?P<stream_id>{UUID})/metrics/?$",
        api.StreamMetricsApi.as_view(),
        name="stream-metrics",
    ),
    re_path(rf"^(?P<stream_id>{UUID})/events/?$", sse.stream_events_view, name="stream-events"),
]
