from django.urls import re_path

from . import api

urlpatterns = [
    re_path(r"^register/?$", api.RegisterApi.as_view(), name="auth-register"),
    re_path(r"^token/?$", api.TokenApi.as_view(), name="auth-token"),
    re_path(r"^token/refresh/?$", api.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    re_path(r"^me/?$", api.MeApi.as_view(), name="auth-me"),
]
