"""The LLM app: agents, the stream runner and its doors. ``ready()`` plugs the room
streams into the chat gateway (``chat`` never imports this app)."""

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "LLM assistant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.extensions import register_active_streams, register_route

        from .gateway import ROUTES, active_streams

        for event, route in ROUTES.items():
            register_route(event, route)
        register_active_streams(active_streams)
