"""WebSocket routes of the LLM app."""

from django.urls import re_path

from .consumer import AiConsumer

websocket_urlpatterns = [re_path(r"^ws/ai/?$", AiConsumer.as_asgi())]
