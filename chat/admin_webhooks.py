"""Admin for incoming webhooks: staff list them, make one for a session (its URL is shown
once, in the page's message) and revoke them. Made and revoked through the services, as the
REST doors do: a new hook's bot joins its session."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse

from .models import ChatSession, IncomingWebhook
from .services.webhooks import webhook_create, webhook_revoke


class WebhookAddForm(forms.ModelForm):
    session = forms.ModelChoiceField(queryset=ChatSession.objects.all())

    class Meta:
        model = IncomingWebhook
        fields = ("session", "name")


@admin.register(IncomingWebhook)
class IncomingWebhookAdmin(admin.ModelAdmin):
    list_display = ("name", "session", "bot", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("session", "bot")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "bot__username", "session__title")
    readonly_fields = (
        "id", "session", "bot", "name", "created_by", "created_at", "last_used_at", "revoked_at",
    )  # fmt: skip
    actions = ("revoke",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = WebhookAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        return ("session", "name") if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        # Revoked, not deleted: its bot's messages keep naming it.
        return False

    def save_model(self, request, obj, form, change):
        hook, secret = webhook_create(
            user=request.user, session_id=form.cleaned_data["session"].pk, name=obj.name
        )
        obj.pk = hook.pk
        url = request.build_absolute_uri(reverse("webhook-post", kwargs={"secret": secret}))
        self.message_user(
            request, f"Webhook URL: {url} (copy it now: it is not shown again).", messages.WARNING
        )

    def response_add(self, request, obj, post_url_continue=None):
        hook = IncomingWebhook.objects.get(pk=obj.pk)
        return super().response_add(request, hook, post_url_continue)

    @admin.action(description="Revoke", permissions=["view"])
    def revoke(self, request, queryset):
        live = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for webhook_id in live:
            webhook_revoke(user=request.user, webhook_id=webhook_id)
        done = len(live)
        self.message_user(request, f"Revoked {done} webhook(s).", messages.SUCCESS)
