"""The web app's account forms: sign up (through the same service as the REST door)."""

from __future__ import annotations

from django import forms

from chatproject.errors import DomainError

from .services import user_register


class SignupForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+\Z",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        required=False,
        help_text="Optional.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data

    def save(self):
        """Register the user; a refusal from the service becomes form errors (and None)."""
        try:
            return user_register(
                username=self.cleaned_data["username"],
                password=self.cleaned_data["password1"],
                email=self.cleaned_data.get("email") or "",
            )
        except DomainError as error:
            details = error.details if isinstance(error.details, dict) else {}
            placed = False
            for field, messages in details.items():
                target = "password1" if field == "password" else field
                if target in self.fields:
                    for message in messages:
                        self.add_error(target, message)
                    placed = True
            if not placed:
                self.add_error(None, error.message)
            return None
