"""WebSocket routes of the platform, behind the origin check and authentication."""

from chat.routing import websocket_urlpatterns as chat_routes
from llm.routing import websocket_urlpatterns as ai_routes

from .entry import Application

# /ws/chat/ (rooms) and /ws/ai/ (one user and the assistant).
websocket_urlpatterns = chat_routes + ai_routes


def websocket_application() -> Application:
    """The WebSocket doors alone (no HTTP), as tests drive them."""
    return Application(websocket_urlpatterns)
