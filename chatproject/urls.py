"""Top-level routes: the web app, REST (``/api/...``), the schema and docs, and admin."""

from django.contrib import admin
from django.contrib.staticfiles.views import serve as static_serve
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import login_doors
from accounts import pages as account_pages
from chat import pages as chat_pages
from chat.pages import page_slash
from chat.urls import UUID
from llm import sse as llm_sse

from .errors import api_not_found
from .health import healthz
from .metrics import metrics_view

urlpatterns = [
    # The web app (session cookie): account pages, the session list at /, rooms. Page URLs
    # end in a slash; the same path without it redirects there.
    path("", chat_pages.home, name="home"),
    path("signup/", account_pages.signup, name="signup"),
    # Every login door counts against AUTH_RATE (accounts.login_doors).
    path("login/", login_doors.web_login, name="login"),
    path("logout/", account_pages.LogoutView.as_view(), name="logout"),
    path("sessions/new/", chat_pages.session_new, name="session-new"),
    path("rooms/<uuid:session_id>/", chat_pages.room, name="room"),
    path("rooms/<uuid:session_id>/members/", chat_pages.room_member_add, name="room-member-add"),
    path("mentions/", chat_pages.mentions, name="mentions"),
    re_path(
        rf"^(?:signup|login|logout|sessions/new|rooms/{UUID}(?:/members)?|mentions)$", page_slash
    ),
    # Static files from the app itself (finders, no collectstatic needed): the one-command
    # run serves the web app with nothing in front. A proxy may serve /static/ first.
    re_path(r"^static/(?P<path>.+)$", static_serve, {"insecure": True}, name="static"),
    # The admin's and the browsable API's login doors, limited, come before the routes that
    # declare them unlimited, so they answer first.
    path("admin/login/", login_doors.admin_login),
    path("admin/", admin.site.urls),
    re_path(r"^healthz/?$", healthz, name="healthz"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/auth/", include("accounts.urls")),
    path("api/chat/streams/", include("llm.stream_urls")),
    path("api/chat/messages/", include("llm.version_urls")),
    path("api/chat/", include("chat.urls")),
    path("api/llm/", include("llm.urls")),
    # Server-sent events (an async view, not DRF): an answer to a conversation (seed 003).
    re_path(r"^api/stream/?$", llm_sse.stream_view, name="llm-stream"),
    path("api-auth/login/", login_doors.api_auth_login),
    path("api-auth/", include("rest_framework.urls")),
]

# Keep this after every other route: an unmatched /api/ path answers in the API's JSON
# error shape instead of Django's HTML 404 page.
urlpatterns += [re_path(r"^api/", api_not_found)]
