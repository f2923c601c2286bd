"""Admin for agents (the model configurations sessions and streams use) and a read-only
record of streams (what each answer cost and how it ended)."""

from django import forms
from django.contrib import admin

from chatproject.errors import DomainError

from .models import Agent, Stream
from .services.agents import agent_name_check, agents_remove


class AgentForm(forms.ModelForm):
    """An agent's admin form, refusing names an ``@`` mention would confuse with a user's."""

    class Meta:
        model = Agent
        fields = ("name", "model", "system_prompt", "temperature", "max_tokens", "tools")

    def clean_name(self):
        name = self.cleaned_data["name"]
        try:
            agent_name_check(name)
        except DomainError as error:
            raise forms.ValidationError(error.message) from error
        return name


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentForm
    list_display = ("name", "model", "temperature", "max_tokens", "tools", "updated_at")
    search_fields = ("name", "model")
    readonly_fields = ("id", "created_at", "updated_at")

    def delete_model(self, request, obj) -> None:
        agents_remove(agent_ids=[obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        agents_remove(agent_ids=queryset.values_list("pk", flat=True))


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
