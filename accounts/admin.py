"""Admin for users: Django's user pages, with list actions to ban and reactivate.

A ban, whether from the list action or by unticking ``is_active`` on the change form, also
revokes the user's refresh tokens and closes their sockets: every save of an inactive user
does that (``accounts.signals``).
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from chatproject.errors import DomainError

from .models import User
from .services import user_deactivate, user_reactivate


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "last_seen_at",
        "last_login",
        "date_joined",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
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
    )
    actions = ("deactivate", "reactivate")

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
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
