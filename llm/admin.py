"""Admin for agents: the model configurations sessions and streams use."""

from django.contrib import admin

from .models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "temperature", "max_tokens", "tools", "updated_at")
    search_fields = ("name", "model")
    readonly_fields = ("id", "created_at", "updated_at")
