"""``/api/chat/streams/``: a room stream's status and metrics (members of its session)."""

from django.urls import re_path

from chat.urls import UUID

from . import api

urlpatterns = [
    re_path(
        rf"^(?P<stream_id>{UUID})/status/?$", api.StreamStatusApi.as_view(), name="stream-status"
    ),
    re_path(
        rf"^(?P<stream_id>{UUID})/metrics/?$",
        api.StreamMetricsApi.as_view(),
        name="stream-metrics",
    ),
]
