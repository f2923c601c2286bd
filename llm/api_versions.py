"""REST doors of an answer's versions, under ``/api/chat/messages/:id/``: ``regenerate``,
``resend`` and ``versions``.

``regenerate`` and ``resend`` start a stream that outlives the request, so they are plain
async Django views (as the SSE doors are, ``llm.sse``): the stream's task runs on the
server's event loop, not in a request thread's. They authenticate as DRF would
(``llm.http_auth``), validate with the WebSocket events' serializers and spend the same
``stream:request`` budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.throttles import throttle_check
from chatproject.errors import DomainError, error_json

from .answer_version_reads import answer_versions
from .async_doors import json_body, method_not_allowed
from .http_auth import request_user
from .inputs import RegenerateBodyInput, ResendBodyInput
from .services.regenerate import answer_regenerate, prompt_resend
from .version_serializers import AnswerVersionsSerializer

THROTTLE_EVENT = "stream:request"


async def _start(request, body_input, start: Callable[[object, dict], Awaitable[dict]]):
    """A POST that starts a stream: the user, the body as ``body_input`` validates it, the
    ``stream:request`` budget spent, then ``start(user, data)``'s ack -> 201."""
    if request.method != "POST":
        return method_not_allowed("POST")
    try:
        user = await request_user(request)
        data = json_body(request, body_input, empty_is_object=True)
        await throttle_check(user_id=user.pk, event=THROTTLE_EVENT)
        started = await start(user, data)
    except DomainError as error:
        return error_json(error)
    return JsonResponse(started, status=201)


@csrf_exempt
async def regenerate_view(request, message_id):
    """``POST /api/chat/messages/:id/regenerate`` {agentId?, config?} -> 201 ``{streamId,
    messageId, version}``."""
    return await _start(
        request,
        RegenerateBodyInput,
        lambda user, data: answer_regenerate(
            user=user, message_id=message_id, agent_id=data["agentId"], config=data["config"]
        ),
    )


@csrf_exempt
async def resend_view(request, message_id):
    """``POST /api/chat/messages/:id/resend`` {content} -> 201 ``{messageId,
    answerMessageId, streamId, version}``."""
    return await _start(
        request,
        ResendBodyInput,
        lambda user, data: prompt_resend(user=user, message_id=message_id, content=data["content"]),
    )


class AnswerVersionsApi(APIView):
    @extend_schema(responses={200: AnswerVersionsSerializer})
    def get(self, request, message_id):
        return Response(answer_versions(user=request.user, message_id=message_id))
