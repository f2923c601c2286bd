"""The LLM app: agents, the stream runner and its doors. ``ready()`` plugs the room
streams into the chat gateway, tells chat about agents and listens to people's messages
for ``@assistant`` (``chat`` never imports this app)."""

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "LLM assistant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.extensions import (
            AgentDirectory,
            register_active_streams,
            register_agents,
            register_attachment_indexer,
            register_message_listener,
            register_periodic,
            register_route,
        )

        from .gateway import ROUTES, active_streams
        from .indexing import attachment_stored, index_sweep
        from .selectors import agent_choices, agent_exists
        from .services.at_mentions import asks_maybe, on_people_messages

        for event, route in ROUTES.items():
            register_route(event, route)
        register_active_streams(active_streams)
        register_agents(AgentDirectory(exists=agent_exists, choices=agent_choices))
        register_message_listener(on_people_messages, wants=asks_maybe)
        register_attachment_indexer(attachment_stored)
        register_periodic(index_sweep)
