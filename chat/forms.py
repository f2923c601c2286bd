"""The web app's chat forms: a new session, and a member added by username.

People know each other by username; the services take user ids. These forms resolve the
names (active users only, case-insensitive) and leave every other rule to the services.
"""

from __future__ import annotations

import operator
import re
from functools import reduce

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

User = get_user_model()

_SEPARATORS = re.compile(r"[\s,;]+")


def users_by_username(names) -> tuple[list, list[str]]:
    """The active users named, and the names that match none."""
    wanted = {name.lstrip("@").lower(): name.lstrip("@") for name in names if name.lstrip("@")}
    if not wanted:
        return [], []
    matches = reduce(operator.or_, (Q(username__iexact=name) for name in wanted.values()))
    found = {u.username.lower(): u for u in User.objects.filter(matches, is_active=True)}
    missing = [original for key, original in wanted.items() if key not in found]
    return list(found.values()), missing


class SessionCreateForm(forms.Form):
    title = forms.CharField(
        max_length=200, widget=forms.TextInput(attrs={"placeholder": "e.g. Release planning"})
    )
    members = forms.CharField(
        required=False,
        max_length=5000,
        help_text="Usernames, separated by commas or spaces. You can add more later.",
        widget=forms.TextInput(attrs={"placeholder": "alice, bob"}),
    )

    def clean_members(self) -> list:
        names = [n for n in _SEPARATORS.split(self.cleaned_data.get("members", "")) if n]
        users, missing = users_by_username(names)
        if missing:
            raise forms.ValidationError(f"No active user named {', '.join(missing)}.")
        return users


class MemberAddForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"placeholder": "username"})
    )

    def clean_username(self):
        users, missing = users_by_username([self.cleaned_data["username"].strip()])
        if missing or not users:
            raise forms.ValidationError(f"No active user named {self.cleaned_data['username']}.")
        return users[0]
