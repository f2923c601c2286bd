"""Password login for people only: Django's ``ModelBackend``, refusing bot accounts.

Every password door (``/api/auth/token``, the web app's and the admin's login pages, the
browsable API's) authenticates through ``django.contrib.auth.authenticate``, so this one
backend is where a bot is shut out of them all, even if someone gave it a password. A bot
signs in with its API tokens only (``accounts.bots``). ``user_can_authenticate`` is the
documented hook for this; it also keeps a bot from using a session cookie.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class PeopleModelBackend(ModelBackend):
    """``ModelBackend`` for active people: bots and inactive users are refused."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_bot", False)
