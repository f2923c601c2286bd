"""REST doors for chat: parse the request, call a selector or service, render the result.

No rule lives here: membership, authorship and validation are the services' and selectors'.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.errors import not_found
from chatproject.validation import validated

from .presence import presence_for_session
from .selectors import (
    SEARCH_MATCHES_MAX,
    message_get_for_member,
    message_history,
    message_receipts,
    message_search,
    reactions_for_message,
    session_get_for_member,
    session_with_members,
    sessions_for_user,
    sessions_with_unread,
    thread_replies,
)
from .serializers import (
    BIGINT_MAX,
    HistoryPageSerializer,
    HistoryQuery,
    MemberAddInput,
    MessageEditInput,
    MessageReceiptsSerializer,
    MessageSendInput,
    MessageSerializer,
    ReactionInput,
    SearchPageSerializer,
    SearchQuery,
    SessionCreateInput,
    SessionForMemberSerializer,
    SessionSerializer,
    SessionUpdateInput,
    reaction_summary,
)
from .services.messages import message_delete, message_edit, message_send
from .services.reactions import reaction_toggle
from .services.sessions import (
    member_add,
    member_remove,
    session_create,
    session_delete,
    session_update,
)
from .throttles import EventThrottle


def _path_user_id(value: str) -> int:
    """A user id from the path (digits by the route): one too large for the database can't
    name a user, and would overflow the driver."""
    user_id = int(value)
    if user_id > BIGINT_MAX:
        raise not_found("Member")
    return user_id


class SessionListApi(APIView):
    @extend_schema(responses={200: SessionForMemberSerializer(many=True)})
    def get(self, request):
        sessions = list(sessions_for_user(user=request.user))
        sessions_with_unread(user=request.user, sessions=sessions)
        return Response(SessionForMemberSerializer(sessions, many=True).data)

    @extend_schema(request=SessionCreateInput, responses={201: SessionSerializer})
    def post(self, request):
        data = validated(SessionCreateInput, request.data)
        session = session_create(
            creator=request.user,
            title=data["title"],
            member_ids=data["memberIds"],
            agent_id=data["agentId"],
        )
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @extend_schema(responses={200: SessionForMemberSerializer})
    def get(self, request, session_id):
        session = session_get_for_member(user=request.user, session_id=session_id)
        (session,) = sessions_with_unread(
            user=request.user, sessions=[session_with_members(session.pk)]
        )
        return Response(SessionForMemberSerializer(session).data)

    @extend_schema(request=SessionUpdateInput, responses={200: SessionSerializer})
    def patch(self, request, session_id):
        data = validated(SessionUpdateInput, request.data)
        session = session_update(user=request.user, session_id=session_id, data=data)
        return Response(SessionSerializer(session).data)

    @extend_schema(responses={204: None})
    def delete(self, request, session_id):
        session_delete(user=request.user, session_id=session_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListApi(APIView):
    @extend_schema(request=MemberAddInput, responses={201: SessionSerializer})
    def post(self, request, session_id):
        data = validated(MemberAddInput, request.data)
        session, created = member_add(
            user=request.user, session_id=session_id, user_id=data["userId"]
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(SessionSerializer(session).data, status=code)


class MemberDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, session_id, user_id):
        member_remove(user=request.user, session_id=session_id, user_id=_path_user_id(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageCreateApi(APIView):
    throttle_classes = [EventThrottle]
    throttle_events = {"POST": "message:send"}

    @extend_schema(request=MessageSendInput, responses={201: MessageSerializer})
    def post(self, request):
        data = validated(MessageSendInput, request.data)
        message = message_send(
            author=request.user,
            session_id=data["sessionId"],
            content=data["content"],
            parent_id=data["parentMessageId"],
            client_id=data["clientId"],
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MessageHistoryApi(APIView):
    @extend_schema(
        parameters=[HistoryQuery],
        responses={200: HistoryPageSerializer},
        description="A page of the session's timeline (its top-level messages) or, with "
        "parentMessageId, of one thread, oldest first. total is the size of that whole "
        "conversation, whatever the cursors: a page shorter than limit is the start.",
    )
    def get(self, request, session_id):
        query = validated(HistoryQuery, request.query_params)
        session = session_get_for_member(user=request.user, session_id=session_id)
        page = message_history(
            session=session,
            limit=query["limit"],
            offset=query["offset"],
            parent_id=query["parentMessageId"],
            after_seq=query["afterSeq"],
            before_seq=query["beforeSeq"],
        )
        return Response(HistoryPageSerializer(page).data)


class MessageDetailApi(APIView):
    throttle_classes = [EventThrottle]
    throttle_events = {"PUT": "message:edit", "DELETE": "message:delete"}

    @extend_schema(responses={200: MessageSerializer})
    def get(self, request, message_id):
        message = message_get_for_member(user=request.user, message_id=message_id)
        return Response(MessageSerializer(message).data)

    @extend_schema(request=MessageEditInput, responses={200: MessageSerializer})
    def put(self, request, message_id):
        data = validated(MessageEditInput, request.data)
        message = message_edit(user=request.user, message_id=message_id, content=data["content"])
        return Response(MessageSerializer(message).data)

    @extend_schema(responses={200: MessageSerializer})
    def delete(self, request, message_id):
        message = message_delete(user=request.user, message_id=message_id)
        return Response(MessageSerializer(message).data)


class ReactionApi(APIView):
    throttle_classes = [EventThrottle]
    throttle_events = {"POST": "message:reaction"}

    @extend_schema(responses={200: dict})
    def get(self, request, message_id):
        message = message_get_for_member(user=request.user, message_id=message_id)
        return Response(reaction_summary(reactions_for_message(message=message)))

    @extend_schema(request=ReactionInput, responses={200: dict})
    def post(self, request, message_id):
        data = validated(ReactionInput, request.data)
        return Response(
            reaction_toggle(user=request.user, message_id=message_id, emoji=data["emoji"])
        )


class MessageReceiptsApi(APIView):
    @extend_schema(
        responses={200: MessageReceiptsSerializer},
        description="Who has seen the message and who has it delivered, among the other "
        "members (not the caller, not its author), by the members' watermarks.",
    )
    def get(self, request, message_id):
        receipts = message_receipts(user=request.user, message_id=message_id)
        return Response(MessageReceiptsSerializer(receipts).data)


class ThreadApi(APIView):
    @extend_schema(responses={200: MessageSerializer(many=True)})
    def get(self, request, message_id):
        parent = message_get_for_member(user=request.user, message_id=message_id)
        return Response(MessageSerializer(thread_replies(parent=parent), many=True).data)


class SearchApi(APIView):
    @extend_schema(
        parameters=[SearchQuery],
        responses={200: SearchPageSerializer},
        description=f"The session's messages holding every word of query, newest first, "
        f"from its newest {SEARCH_MATCHES_MAX:,} matches; total is capped at "
        f"{SEARCH_MATCHES_MAX:,}.",
    )
    def get(self, request, session_id):
        query = validated(SearchQuery, request.query_params)
        session = session_get_for_member(user=request.user, session_id=session_id)
        page = message_search(
            session=session, query=query["query"], limit=query["limit"], offset=query["offset"]
        )
        return Response(SearchPageSerializer(page).data)


class PresenceApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, session_id):
        session = session_get_for_member(user=request.user, session_id=session_id)
        return Response(presence_for_session(session=session))
