"""Admin for agents (the model configurations sessions and streams use) and a read-only
record of streams (what each answer cost and how it ended)."""

from django.contrib import admin

from .models import Agent, Stream


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "temperature", "max_tokens", "tools", "updated_at")
    search_fields = ("name", "model")
    readonly_fields = ("id", "created_at", "updated_at")


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "model", "status", "tokens_generated", "started_at")
    list_filter = ("status", "model")
    list_select_related = ("session",)
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
