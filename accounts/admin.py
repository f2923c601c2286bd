"""Admin for users: Django's user pages, with list actions to ban and reactivate; and bots'
API tokens.

A ban, whether from the list action or by unticking ``is_active`` on the change form, also
revokes the user's refresh tokens and closes their sockets: every save of an inactive user
does that (``accounts.signals``).

Bots are users with ``is_bot`` (filter the user list by it); their tokens are listed under
each bot and on the bot tokens page, where staff make them (a new bot too, by naming it):
the token is shown once, in the page's message, and only its hash is kept. Deleting a token
revokes it, and closes the sockets it opened (``accounts.signals``), as deactivating a bot
closes all of its sockets.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.utils.translation import gettext_lazy as _

from chatproject.errors import DomainError

from .bots import bot_create, bot_token_create
from .models import BotToken, User
from .services import (
    RESERVED,
    user_deactivate,
    user_reactivate,
    username_free_check,
    username_reserved,
)


class BotTokenInline(admin.TabularInline):
    """A bot's tokens, read-only: deleting one revokes it."""

    model = BotToken
    fk_name = "user"
    extra = 0
    fields = ("token_id", "name", "created", "last_used_at", "created_by")
    readonly_fields = fields
    can_delete = True
    verbose_name_plural = "API tokens (delete to revoke; add them on the bot tokens page)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class UserCreationForm(AdminUserCreationForm):
    """Django's add-user form, refusing the usernames kept for the assistant."""

    def clean_username(self):
        username = super().clean_username()
        if username and username_reserved(username):
            raise forms.ValidationError(RESERVED)
        return username


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_bot",
        "last_seen_at",
        "last_login",
        "date_joined",
    )
    list_filter = ("is_active", "is_staff", "is_bot", "is_superuser", "groups")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (
            _("Permissions"),
            {
                "description": _(
                    "Unticking Active bans the user: it also revokes their tokens and "
                    "closes their open connections."
                ),
                "fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions"),
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "last_seen_at", "date_joined")}),
        (_("Bot"), {"fields": ("is_bot",)}),
    )
    actions = ("deactivate", "reactivate")

    def get_inlines(self, request, obj):
        return [BotTokenInline] if obj is not None and obj.is_bot else []

    def get_readonly_fields(self, request, obj=None):
        # A person never becomes a bot nor a bot a person: bots are made as such.
        readonly = (*super().get_readonly_fields(request, obj), "is_bot")
        if obj is None:
            return readonly
        if obj.pk == request.user.pk:
            # As with the list action: a moderator can't ban themselves out of the admin.
            return (*readonly, "is_active", "last_seen_at")
        return (*readonly, "last_seen_at")

    @admin.action(description=_("Deactivate (ban)"), permissions=["change"])
    def deactivate(self, request, queryset):
        done = 0
        for user in queryset.filter(is_active=True):
            try:
                user_deactivate(user=user, by=request.user)
            except DomainError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"Deactivated {done} user(s).", messages.SUCCESS)

    @admin.action(description=_("Reactivate"), permissions=["change"])
    def reactivate(self, request, queryset):
        done = 0
        for user in queryset.filter(is_active=False):
            user_reactivate(user=user)
            done += 1
        self.message_user(request, f"Reactivated {done} user(s).", messages.SUCCESS)


class BotTokenAddForm(forms.ModelForm):
    """A new token: for an existing bot, or for a new bot named here."""

    bot = forms.ModelChoiceField(
        queryset=User.objects.filter(is_bot=True, is_active=True),
        required=False,
        help_text="The bot the token signs in as.",
    )
    new_bot_username = forms.RegexField(
        regex=r"^[\w.@+-]+\Z",
        max_length=150,
        required=False,
        help_text="Or a new bot's username: the bot is made with the token.",
    )

    class Meta:
        model = BotToken
        fields = ("name",)

    def clean(self):
        data = super().clean()
        if bool(data.get("bot")) == bool(data.get("new_bot_username")):
            raise forms.ValidationError("Choose a bot, or name a new one (not both).")
        username = data.get("new_bot_username")
        if username:
            try:
                username_free_check(username)
            except DomainError as exc:
                self.add_error("new_bot_username", exc.message)
        return data


@admin.register(BotToken)
class BotTokenAdmin(admin.ModelAdmin):
    """Bots' API tokens: made here (the token is shown once), deleted to revoke."""

    list_display = ("name", "user", "token_id", "created", "last_used_at", "created_by")
    list_select_related = ("user", "created_by")
    search_fields = ("name", "user__username")
    readonly_fields = ("user", "token_id", "name", "created", "last_used_at", "created_by")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = BotTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("bot", "new_bot_username", "name")
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        # The change page shows the token's facts; nothing about it can change.
        return obj is None

    def save_model(self, request, obj, form, change):
        """Make the token through the service: ``obj`` becomes the stored token, and the
        token itself is shown once."""
        data = form.cleaned_data
        bot = data["bot"] or bot_create(by=request.user, username=data["new_bot_username"])
        token, raw = bot_token_create(by=request.user, bot_id=bot.pk, name=data["name"])
        obj.pk, obj.digest = token.pk, token.digest
        self.message_user(
            request,
            f"Token for {bot.username}: {raw} (copy it now: it is not shown again).",
            messages.WARNING,
        )

    def response_add(self, request, obj, post_url_continue=None):
        return super().response_add(request, BotToken.objects.get(pk=obj.pk), post_url_continue)
