"""REST doors for incoming webhooks: a session's hooks (create, list, revoke), and the
secret URL a hook posts to, which needs no other credentials."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.validation import validated

from .services.webhooks import (
    webhook_create,
    webhook_for_secret,
    webhook_post,
    webhook_revoke,
    webhook_throttle_check,
    webhooks_for_session,
)
from .webhook_serializers import (
    WebhookCreatedSerializer,
    WebhookCreateInput,
    WebhookPostedSerializer,
    WebhookPostInput,
    WebhookSerializer,
)


class SessionWebhookListApi(APIView):
    @extend_schema(responses={200: WebhookSerializer(many=True)})
    def get(self, request, session_id):
        hooks = webhooks_for_session(user=request.user, session_id=session_id)
        return Response(WebhookSerializer(hooks, many=True).data)

    @extend_schema(request=WebhookCreateInput, responses={201: WebhookCreatedSerializer})
    def post(self, request, session_id):
        data = validated(WebhookCreateInput, request.data)
        hook, secret = webhook_create(user=request.user, session_id=session_id, name=data["name"])
        hook.url = request.build_absolute_uri(reverse("webhook-post", kwargs={"secret": secret}))
        return Response(WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, webhook_id):
        webhook_revoke(user=request.user, webhook_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPostApi(APIView):
    """The hook's URL: the secret in the path is the credential (no auth, no CSRF: DRF
    checks CSRF only for session authentication, and this view has none)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=WebhookPostInput, responses={201: WebhookPostedSerializer})
    def post(self, request, secret):
        hook = webhook_for_secret(secret=secret)
        async_to_sync(webhook_throttle_check)(hook=hook)
        data = validated(WebhookPostInput, request.data)
        message = webhook_post(hook=hook, content=data["content"], username=data["username"])
        return Response(WebhookPostedSerializer(message).data, status=status.HTTP_201_CREATED)
