"""WebSocket routes of the platform, behind the origin check and authentication."""

from channels.routing import URLRouter

from accounts.auth import WebsocketAuthStack
from chat.routing import websocket_urlpatterns as chat_routes

from .origins import OriginGuard

websocket_urlpatterns = chat_routes


def websocket_application():
    return OriginGuard(WebsocketAuthStack(URLRouter(websocket_urlpatterns)))
