from django.urls import re_path

from . import api, api_bots

UUID = r"[0-9a-fA-F-]{32,36}"

urlpatterns = [
    re_path(r"^register/?$", api.RegisterApi.as_view(), name="auth-register"),
    re_path(r"^token/?$", api.TokenApi.as_view(), name="auth-token"),
    re_path(r"^token/refresh/?$", api.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    re_path(r"^me/?$", api.MeApi.as_view(), name="auth-me"),
    re_path(r"^bots/?$", api_bots.BotListApi.as_view(), name="auth-bots"),
    re_path(
        r"^bots/(?P<bot_id>\d{1,18})/tokens/?$",
        api_bots.BotTokenListApi.as_view(),
        name="auth-bot-tokens",
    ),
    re_path(
        rf"^bots/(?P<bot_id>\d{{1,18}})/tokens/(?P<token_id>{UUID})/?$",
        api_bots.BotTokenDetailApi.as_view(),
        name="auth-bot-token-detail",
    ),
]
