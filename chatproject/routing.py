"""WebSocket routes of the platform (``/ws/chat/``, ``/ws/ai/``)."""

websocket_urlpatterns: list = []
