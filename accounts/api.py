"""REST doors for accounts: register, token, refresh, me."""

from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from chatproject.errors import DomainError
from chatproject.validation import validated

from .ratelimit import login_rate_check, register_rate_check
from .serializers import (
    MeSerializer,
    RefreshInputSerializer,
    RegisterInputSerializer,
    TokenInputSerializer,
    UserSerializer,
)
from .services import user_register

User = get_user_model()


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterInputSerializer, responses={201: UserSerializer})
    def post(self, request):
        register_rate_check(request)
        user = user_register(**validated(RegisterInputSerializer, request.data))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=TokenInputSerializer, responses={200: dict})
    def post(self, request):
        login_rate_check(request)
        pair = TokenObtainPairSerializer(data=validated(TokenInputSerializer, request.data))
        if not pair.is_valid():
            raise DomainError(
                "UNAUTHORIZED", "Wrong username or password, or the account is disabled."
            )
        return Response(pair.validated_data)


class TokenRefreshApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshInputSerializer, responses={200: dict})
    def post(self, request):
        data = validated(RefreshInputSerializer, request.data)
        refresh = TokenRefreshSerializer(data=data)
        try:
            with transaction.atomic():
                # Two requests racing with one token would both pass the blacklist check
                # before either blacklists it: holding the token's row makes the second wait,
                # then see the first one's blacklisting and fail.
                jti = RefreshToken(data["refresh"])["jti"]
                OutstandingToken.objects.select_for_update().filter(jti=jti).first()
                refresh.is_valid(raise_exception=True)
        except (TokenError, User.DoesNotExist) as exc:
            # DoesNotExist: the token outlived its user, which simplejwt doesn't catch.
            raise DomainError(
                "UNAUTHORIZED", "The refresh token is invalid, expired or already used."
            ) from exc
        return Response(refresh.validated_data)


class MeApi(APIView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request):
        return Response(MeSerializer(request.user).data)
