"""The web app's account pages: sign up, log in, log out (session-cookie auth).

Log in and out are Django's own views; sign up registers through ``user_register``, the
service the REST door uses, then logs the new user in. Log in and sign up share the REST
doors' brute-force limit (``AUTH_RATE``): log in through ``accounts.login_doors``.
"""

from __future__ import annotations

from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from chatproject.errors import DomainError

from .forms import SignupForm
from .ratelimit import register_rate_check

SAFE_NEXT_DEFAULT = "/"


class LoginView(auth_views.LoginView):
    """Django's login view on the web app's template; ``accounts.login_doors`` puts it
    behind the login limit."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): the header's "Log out" button is a small form."""


@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect(SAFE_NEXT_DEFAULT)
    form = SignupForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "POST":
        try:
            # The same count as POST /api/auth/register: one limit per IP, whichever door.
            register_rate_check(request)
        except DomainError as error:
            retry_after = error.as_data()["retryAfter"]
            form.is_valid()
            form.add_error(None, f"{error.message} ({retry_after} s)")
            status = 429
        else:
            if form.is_valid() and (user := form.save()) is not None:
                auth.login(request, user, backend="accounts.backends.PeopleModelBackend")
                return redirect(SAFE_NEXT_DEFAULT)
            status = 400
    response = render(request, "accounts/signup.html", {"form": form}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
