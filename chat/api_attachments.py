"""REST doors for message attachments: upload or link, list, delete and download.

Thin like ``chat.api``: the rules (membership, authorship, size, type from the bytes) are in
``chat.services.attachments``. What lives here is HTTP: refusing an oversized body before it
is parsed, and streaming a stored file back as a download.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import FileResponse
from drf_spectacular.utils import OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.errors import validation_error
from chatproject.parsers import JSONParser
from chatproject.validation import validated

from .serializers import AttachmentSerializer, AttachmentUrlInput
from .services.attachments import (
    TEXT_TYPE,
    attachment_add_file,
    attachment_add_url,
    attachment_delete,
    attachment_file_for_member,
    attachment_get_for_member,
    attachments_for_message,
    upload_too_large,
)

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_ALLOWANCE = 64 * 1024
_TWO_FORMS = (
    "Send the file as multipart/form-data in a field named 'file', or a JSON link "
    "{fileName, fileUrl, mimeType, fileSize?, metadata?}."
)


_UPLOAD_SCHEMA = inline_serializer("AttachmentUpload", {"file": serializers.FileField()})


class _SizeLimitHandler(FileUploadHandler):
    """Stops a multipart upload as soon as one file's data passes the attachment limit,
    before the rest of it is written to a temporary file (a body without Content-Length
    gets this far)."""

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.ATTACHMENT_MAX_BYTES:
            raise upload_too_large()
        return raw_data

    def file_complete(self, file_size):
        return None


def _refuse_oversized_body(request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.ATTACHMENT_MAX_BYTES + MULTIPART_ALLOWANCE:
        raise upload_too_large()


class MessageAttachmentsApi(APIView):
    """``POST`` attaches a file (multipart ``file``) or a link (JSON) to the caller's message;
    ``GET`` lists the message's attachments, oldest first."""

    parser_classes = [MultiPartParser, JSONParser]

    def initial(self, request, *args, **kwargs):
        # Before authentication: SessionAuthentication's CSRF check reads request.POST, which
        # would parse (and spool to disk) the whole multipart body. ``upload_handlers`` is
        # Django's documented list ("Modifying upload handlers on the fly"), which DRF's
        # Request proxies and its MultiPartParser reads.
        if request.method == "POST":
            _refuse_oversized_body(request)
            request.upload_handlers.insert(0, _SizeLimitHandler(request))
        super().initial(request, *args, **kwargs)

    @extend_schema(responses={200: AttachmentSerializer(many=True)})
    def get(self, request, message_id):
        attachments = attachments_for_message(user=request.user, message_id=message_id)
        return Response(AttachmentSerializer(attachments, many=True).data)

    @extend_schema(
        request={"multipart/form-data": _UPLOAD_SCHEMA, "application/json": AttachmentUrlInput},
        responses={201: AttachmentSerializer},
    )
    def post(self, request, message_id):
        if (request.content_type or "").startswith("multipart/form-data"):
            upload = request.FILES.get("file")
            if upload is None:
                raise validation_error(_TWO_FORMS, {"file": ["No file was sent."]})
            attachment = attachment_add_file(
                user=request.user, message_id=message_id, upload=upload
            )
        else:
            try:
                body = request.data
            except UnsupportedMediaType as exc:
                raise validation_error(_TWO_FORMS) from exc
            data = validated(AttachmentUrlInput, body)
            attachment = attachment_add_url(
                user=request.user,
                message_id=message_id,
                file_name=data["fileName"],
                file_url=data["fileUrl"],
                mime_type=data["mimeType"],
                file_size=data["fileSize"],
                metadata=data["metadata"],
            )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class AttachmentDetailApi(APIView):
    @extend_schema(responses={200: AttachmentSerializer})
    def get(self, request, attachment_id):
        attachment = attachment_get_for_member(user=request.user, attachment_id=attachment_id)
        return Response(AttachmentSerializer(attachment).data)

    @extend_schema(responses={204: None})
    def delete(self, request, attachment_id):
        attachment_delete(user=request.user, attachment_id=attachment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _AnyAccept(BaseContentNegotiation):
    """A download answers whatever the client accepts; errors still render as JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _AttachmentFileResponse(FileResponse):
    """A ``FileResponse`` that, served over ASGI, reads its file block by block on a worker
    thread. Django's ASGI handler would otherwise read the whole file into memory before
    sending its first byte (it consumes a sync iterator with one ``sync_to_async(list)``)."""

    async_block_size = 64 * 1024

    async def __aiter__(self):
        read = sync_to_async(self.file_to_stream.read, thread_sensitive=False)
        while block := await read(self.async_block_size):
            yield block


class AttachmentDownloadApi(APIView):
    """The stored file, to members of the message's session, as a download.

    ``Content-Disposition: attachment`` with the original name, the type detected at upload,
    ``X-Content-Type-Options: nosniff`` and a sandboxing CSP, so a browser never renders it
    as a page of this site. A link attachment has no stored file: 404 with a message saying
    to open its ``fileUrl`` (no redirect, so this path can't be an open redirect).
    """

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyAccept

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, attachment_id):
        attachment = attachment_file_for_member(user=request.user, attachment_id=attachment_id)
        content_type = attachment.mime_type
        if content_type == TEXT_TYPE:
            content_type += "; charset=utf-8"
        response = _AttachmentFileResponse(
            attachment.file.open("rb"),
            as_attachment=True,
            filename=attachment.file_name,
            content_type=content_type,
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private"
        return response
