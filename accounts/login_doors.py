"""The HTML login doors, behind the same brute-force limit as ``/api/auth/token``.

Neither Django's admin nor DRF's browsable API limits its login view, so the URL conf puts
each of them, and the web app's own, behind ``login_rate_limited``: a POST counts as one
attempt per IP and per username (``accounts.ratelimit.login_rate_check``), and one over
``AUTH_RATE`` gets a 429 page saying how long to wait, with ``Retry-After``, before the
password is looked at.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.template.response import TemplateResponse

from chatproject.errors import DomainError

from .pages import LoginView
from .ratelimit import login_rate_check


def login_refused(request, error: DomainError) -> TemplateResponse:
    retry_after = error.as_data()["retryAfter"]
    response = TemplateResponse(
        request,
        "accounts/login_refused.html",
        {"message": error.message, "retry_after": retry_after},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


def login_rate_limited(view):
    """Wrap a login view: a POST over ``AUTH_RATE`` is refused with a 429 page."""

    @wraps(view)
    def limited(request, *args, **kwargs):
        if request.method == "POST":
            try:
                login_rate_check(request)
            except DomainError as error:
                return login_refused(request, error)
        return view(request, *args, **kwargs)

    return limited


# The web app's page, the admin's (``AdminSite.login``, what ``admin.site.urls`` routes
# ``login/`` to) and the browsable API's (the view ``rest_framework.urls`` declares).
web_login = login_rate_limited(LoginView.as_view())
admin_login = login_rate_limited(admin.site.login)
api_auth_login = login_rate_limited(
    auth_views.LoginView.as_view(template_name="rest_framework/login.html")
)
