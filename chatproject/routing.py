"""WebSocket routes of the platform (``chatproject.asgi`` puts the origin check and the auth
middleware in front of them)."""

from channels.security.websocket import WebsocketDenier
from django.urls import re_path

from chat.routing import websocket_urlpatterns as chat_routes
from llm.routing import websocket_urlpatterns as ai_routes

# /ws/chat/ (rooms) and /ws/ai/ (one user and the assistant); any other path is refused
# with HTTP 403, where Channels' router would raise (an HTTP 500 under daphne).
websocket_urlpatterns = [*chat_routes, *ai_routes, re_path(r"", WebsocketDenier.as_asgi())]
