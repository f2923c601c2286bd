"""REST doors for pins and edit history: a session's pinned messages, pinning and unpinning
one, and the earlier versions of a message's text.

Thin like ``chat.api``: membership and the rules are ``chat.services.pins``' and the
selectors'. Pinning and unpinning spend the budget of their WebSocket twins
(``message:pin``, ``message:unpin``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import message_versions, session_get_for_member, session_pins
from .serializers import MessageVersionsSerializer, PinListSerializer, PinSerializer
from .services.pins import message_pin, message_unpin
from .throttles import EventThrottle


class PinListApi(APIView):
    @extend_schema(
        responses={200: PinListSerializer},
        description="The session's pinned messages, newest pin first (members only).",
    )
    def get(self, request, session_id):
        session = session_get_for_member(user=request.user, session_id=session_id)
        return Response(PinListSerializer({"pins": session_pins(session=session)}).data)


class MessagePinApi(APIView):
    throttle_classes = [EventThrottle]
    throttle_events = {"POST": "message:pin", "DELETE": "message:unpin"}

    @extend_schema(
        request=None,
        responses={201: PinSerializer, 200: PinSerializer},
        description="Pin the message (any member): 201 with the pin, or 200 with the pin it "
        "already had. A deleted message can't be pinned (400).",
    )
    def post(self, request, message_id):
        change = message_pin(user=request.user, message_id=message_id)
        code = status.HTTP_201_CREATED if change.changed else status.HTTP_200_OK
        return Response(PinSerializer(change.message).data, status=code)

    @extend_schema(
        request=None,
        responses={204: None},
        description="Unpin the message (any member); 204 whether or not it was pinned.",
    )
    def delete(self, request, message_id):
        message_unpin(user=request.user, message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageVersionsApi(APIView):
    @extend_schema(
        responses={200: MessageVersionsSerializer},
        description="Every version of the message's text, oldest first, the current one "
        "last (members only); none for a deleted message.",
    )
    def get(self, request, message_id):
        versions = message_versions(user=request.user, message_id=message_id)
        return Response(MessageVersionsSerializer(versions).data)
