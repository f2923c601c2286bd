"""REST doors for mentions and notification settings: the caller's mentions across their
sessions, and their ``notify`` in one session (``chat.services.mentions``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.validation import validated

from .selectors import membership_notify_get, mentions_for_user
from .serializers import MentionPageSerializer, MentionsQuery, NotifyInput, NotifySerializer
from .services.mentions import membership_notify_set


def _notify(session_id, notify: str) -> dict:
    return NotifySerializer({"sessionId": session_id, "notify": notify}).data


class SessionNotifyApi(APIView):
    @extend_schema(responses={200: NotifySerializer})
    def get(self, request, session_id):
        notify = membership_notify_get(user=request.user, session_id=session_id)
        return Response(_notify(session_id, notify))

    @extend_schema(
        request=NotifyInput,
        responses={200: NotifySerializer},
        description="Which of the session's messages notify you (notification:new): all, "
        "mentions (those naming you; the default) or none.",
    )
    def patch(self, request, session_id):
        data = validated(NotifyInput, request.data)
        notify = membership_notify_set(
            user=request.user, session_id=session_id, notify=data["notify"]
        )
        return Response(_notify(session_id, notify))


class MentionListApi(APIView):
    @extend_schema(
        parameters=[MentionsQuery],
        responses={200: MentionPageSerializer},
        description="Messages by others that mention you, newest first, in the sessions you "
        "are a member of; deleted ones are left out.",
    )
    def get(self, request):
        query = validated(MentionsQuery, request.query_params)
        page = mentions_for_user(user=request.user, limit=query["limit"], offset=query["offset"])
        return Response(MentionPageSerializer(page).data)
