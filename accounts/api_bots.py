"""REST doors for staff to manage bots and their tokens: list, create, revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.validation import validated

from .bots import (
    bot_create,
    bot_token_create,
    bot_token_revoke,
    bot_tokens_list,
    bots_list,
)
from .serializers import (
    BotCreateInput,
    BotSerializer,
    BotTokenCreatedSerializer,
    BotTokenCreateInput,
    BotTokenSerializer,
)


class BotListApi(APIView):
    @extend_schema(responses={200: BotSerializer(many=True)})
    def get(self, request):
        return Response(BotSerializer(bots_list(by=request.user), many=True).data)

    @extend_schema(request=BotCreateInput, responses={201: BotSerializer})
    def post(self, request):
        bot = bot_create(by=request.user, **validated(BotCreateInput, request.data))
        return Response(BotSerializer(bot).data, status=status.HTTP_201_CREATED)


class BotTokenListApi(APIView):
    @extend_schema(responses={200: BotTokenSerializer(many=True)})
    def get(self, request, bot_id):
        tokens = bot_tokens_list(by=request.user, bot_id=int(bot_id))
        return Response(BotTokenSerializer(tokens, many=True).data)

    @extend_schema(request=BotTokenCreateInput, responses={201: BotTokenCreatedSerializer})
    def post(self, request, bot_id):
        data = validated(BotTokenCreateInput, request.data)
        token, raw = bot_token_create(by=request.user, bot_id=int(bot_id), name=data["name"])
        token.token = raw
        return Response(BotTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class BotTokenDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, bot_id, token_id):
        bot_token_revoke(by=request.user, bot_id=int(bot_id), token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
