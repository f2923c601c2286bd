"""WebSocket routes of the platform, behind the origin check and authentication."""

from channels.routing import URLRouter

from accounts.auth import WebsocketAuthStack
from chat.broadcaster import LoopBinding
from chat.routing import websocket_urlpatterns as chat_routes
from llm.routing import websocket_urlpatterns as ai_routes

from .origins import OriginGuard
from .ws_outage import OutageGuard

# /ws/chat/ (rooms) and /ws/ai/ (one user and the assistant).
websocket_urlpatterns = chat_routes + ai_routes


def websocket_application():
    return LoopBinding(
        OriginGuard(OutageGuard(WebsocketAuthStack(URLRouter(websocket_urlpatterns))))
    )
