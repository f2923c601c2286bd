"""Attachments: what is stored (type from the bytes, size limits), who may add, list, download
and delete them, what the download sends, and what the session hears."""

import io
import struct
import warnings
import zlib

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.asgi import get_asgi_application
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from chat import event_types
from chat.models import Attachment, Message
from chat.selectors import message_get
from chat.serializers import render_message as render
from chat.services.attachments import attachment_add_file
from chat.services.messages import message_delete, message_send
from chatproject.errors import DomainError

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A real, decodable RGB PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 44
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
# An EBML header whose DocType is "matroska": a weaker WebM rule matches it too.
MKV = b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x88matroska"


@pytest.fixture
def message(room, alice):
    return message_send(author=alice, session_id=room.pk, content="see attached")


def attachments_url(message_id) -> str:
    return reverse("message-attachments", kwargs={"message_id": message_id})


def detail_url(attachment_id) -> str:
    return reverse("attachment-detail", kwargs={"attachment_id": attachment_id})


def download_url(attachment_id) -> str:
    return reverse("attachment-download", kwargs={"attachment_id": attachment_id})


def upload(client, message_id, name: str, data: bytes, content_type="application/octet-stream"):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(attachments_url(message_id), {"file": file}, format="multipart")


def stored_files(room) -> list[str]:
    try:
        return default_storage.listdir(f"attachments/{room.pk.hex}")[1]
    except FileNotFoundError:
        return []


def link_body(**overrides) -> dict:
    body = {
        "fileName": "report.pdf",
        "fileUrl": "https://files.example.com/report.pdf",
        "mimeType": "application/pdf",
        "fileSize": 2048,
        "metadata": {"pages": 3},
    }
    return body | overrides


# --- Stored files --------------------------------------------------------------------------


def test_a_png_is_stored_with_type_size_and_dimensions_read_from_its_bytes(
    client_for, alice, room, message
):
    data = png_bytes(3, 2)

    # The client's claimed content type is ignored: the bytes decide.
    response = upload(client_for(alice), message.pk, "holiday.png", data, "text/html")

    assert response.status_code == 201, response.content
    body = response.json()
    attachment = Attachment.objects.get()
    assert body == {
        "id": str(attachment.pk),
        "fileName": "holiday.png",
        "fileUrl": download_url(attachment.pk),
        "mimeType": "image/png",
        "fileSize": len(data),
        "metadata": {"width": 3, "height": 2},
        "createdAt": body["createdAt"],
        "indexStatus": "",
        "indexError": "",
    }
    assert attachment.uploaded_by == alice
    with attachment.file.open("rb") as stored:
        assert stored.read() == data
    assert stored_files(room) == [attachment.pk.hex], "stored under its id, not the user's name"


def jpeg_bytes(width: int, height: int) -> bytes:
    """A JPEG's leading segments: JFIF, then a baseline start-of-frame carrying the size."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = (
        b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x01\x22\x00" * 3
    )
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


@pytest.mark.parametrize(
    ("data", "mime_type"),
    [
        (jpeg_bytes(640, 480), "image/jpeg"),
        (b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00\x00\x00;", "image/gif"),
    ],
    ids=["jpeg", "gif"],
)
def test_jpeg_and_gif_dimensions_are_read_from_their_headers(alice, message, data, mime_type):
    attachment = attachment_add_file(
        user=alice, message_id=message.pk, upload=File(io.BytesIO(data), name="picture")
    )

    assert attachment.mime_type == mime_type
    assert attachment.metadata == {"width": 640, "height": 480}


def test_utf8_text_without_magic_is_stored_as_plain_text(client_for, alice, message):
    data = "name,city\nZoë,Zürich\n".encode()

    response = upload(client_for(alice), message.pk, "people.csv", data)

    assert response.status_code == 201, response.content
    assert response.json()["mimeType"] == "text/plain"
    assert response.json()["fileSize"] == len(data)
    assert response.json()["metadata"] == {}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("x.png", HTML),
        ("cat.png", b"\n  <script>fetch('/api/auth/me')</script>"),
        ("logo.png", SVG),
        ("x.png", ELF),
        ("setup.png", EXE),
        ("clip.webm", MKV + b"\x00" * 20),
        ("notes.txt", b"text with a NUL\x00 inside"),
        ("latin1.txt", "caf\xe9".encode("latin-1")),
    ],
    ids=["html", "bare-script", "svg", "elf", "exe", "mkv", "nul-byte", "not-utf8"],
)
def test_a_disguised_or_unlisted_file_is_refused_with_415_and_nothing_is_stored(
    client_for, alice, room, message, name, data
):
    response = upload(client_for(alice), message.pk, name, data, "image/png")

    assert response.status_code == 415, response.content
    body = response.json()
    assert body["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "PNG" in body["message"] and "plain UTF-8 text" in body["message"]
    assert "image/png" in body["details"]["allowed"]
    assert Attachment.objects.count() == 0
    assert stored_files(room) == []


def test_a_file_over_the_limit_is_refused_with_413_and_nothing_is_stored(
    settings, client_for, alice, room, message
):
    settings.ATTACHMENT_MAX_BYTES = 100

    response = upload(client_for(alice), message.pk, "big.txt", b"a" * 101)

    assert response.status_code == 413, response.content
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["details"] == {"maxBytes": 100}
    assert response.json()["message"] == (
        "The file is too large: attachments can be at most 100\xa0bytes."
    )
    assert Attachment.objects.count() == 0
    assert stored_files(room) == []


def test_a_file_exactly_at_the_limit_is_accepted(settings, client_for, alice, message):
    settings.ATTACHMENT_MAX_BYTES = 100

    response = upload(client_for(alice), message.pk, "fits.txt", b"a" * 100)

    assert response.status_code == 201, response.content


def test_a_body_whose_content_length_is_over_the_limit_is_refused_before_it_is_parsed(
    settings, client_for, alice, message
):
    settings.ATTACHMENT_MAX_BYTES = 100
    # Not valid multipart: parsing it would answer 400, so a 413 shows it was never parsed.
    garbage = b"x" * (100 + 64 * 1024 + 1)

    response = client_for(alice).generic(
        "POST",
        attachments_url(message.pk),
        garbage,
        content_type="multipart/form-data; boundary=nothing-here",
    )

    assert response.status_code == 413, response.content
    assert Attachment.objects.count() == 0


def test_an_oversized_file_is_stopped_while_the_body_is_parsed_before_the_service_runs(
    settings, monkeypatch, client_for, alice, message
):
    settings.ATTACHMENT_MAX_BYTES = 1000

    def never(**kwargs):
        raise AssertionError("the service was reached with an oversized file")

    monkeypatch.setattr("chat.api_attachments.attachment_add_file", never)

    # Under the Content-Length allowance, so only the upload handler can stop it.
    response = upload(client_for(alice), message.pk, "big.txt", b"a" * 5000)

    assert response.status_code == 413, response.content
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_the_web_apps_session_cookie_and_csrf_token_upload_and_are_size_checked(
    settings, alice, message
):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    secret = "s" * 32
    browser.cookies["csrftoken"] = secret
    url = attachments_url(message.pk)

    def send(data: bytes, token: str | None = secret):
        file = SimpleUploadedFile("note.txt", data)
        headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
        return browser.post(url, {"file": file}, format="multipart", **headers)

    assert send(b"hello", token=None).status_code == 403, "no CSRF token, no upload"
    assert send(b"hello").status_code == 201
    settings.ATTACHMENT_MAX_BYTES = 100
    # The CSRF check reads the form, so the size limit must already be in place then.
    assert send(b"a" * 5000).status_code == 413


def test_the_service_stops_reading_an_upload_of_unknown_size_at_the_limit(settings, alice, message):
    settings.ATTACHMENT_MAX_BYTES = 100
    unsized = File(io.BytesIO(b"a" * 1000), name="stream.txt")
    unsized.size = None

    with pytest.raises(DomainError) as caught:
        attachment_add_file(user=alice, message_id=message.pk, upload=unsized)

    assert caught.value.code == "PAYLOAD_TOO_LARGE"
    assert Attachment.objects.count() == 0


def test_the_stored_file_name_is_a_clean_basename_of_at_most_255_characters(alice, room, message):
    hostile = File(io.BytesIO(b"plain words"), name="C:\\temp\\..\\evil\r\n\x00name.txt")
    long_name = File(io.BytesIO(b"plain words"), name="a" * 300 + ".txt")

    first = attachment_add_file(user=alice, message_id=message.pk, upload=hostile)
    second = attachment_add_file(user=alice, message_id=message.pk, upload=long_name)

    assert first.file_name == "evilname.txt"
    assert second.file_name == "a" * 251 + ".txt"
    assert sorted(stored_files(room)) == sorted([first.pk.hex, second.pk.hex])


def test_an_empty_file_is_refused_with_400(client_for, alice, message):
    response = upload(client_for(alice), message.pk, "empty.txt", b"")

    assert response.status_code == 400, response.content
    assert Attachment.objects.count() == 0


# --- Links ---------------------------------------------------------------------------------


def test_an_http_link_is_attached_as_declared_and_listed(client_for, alice, bob, message):
    response = client_for(alice).post(attachments_url(message.pk), link_body(), format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["fileUrl"] == "https://files.example.com/report.pdf"
    assert (created["fileName"], created["mimeType"], created["fileSize"]) == (
        "report.pdf",
        "application/pdf",
        2048,
    )
    assert created["metadata"] == {"pages": 3}
    listed = client_for(bob).get(attachments_url(message.pk))
    assert listed.status_code == 200
    assert listed.json() == [created]


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://files.example.com/report.pdf", "data:text/html,hi"],
)
def test_a_link_that_is_not_http_or_https_is_refused_with_400(client_for, alice, message, url):
    response = client_for(alice).post(
        attachments_url(message.pk), link_body(fileUrl=url), format="json"
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "fileUrl" in response.json()["details"]
    assert Attachment.objects.count() == 0


def test_downloading_a_link_attachment_is_404_saying_to_open_its_url(client_for, alice, message):
    created = client_for(alice).post(attachments_url(message.pk), link_body(), format="json")

    response = client_for(alice).get(download_url(created.json()["id"]))

    assert response.status_code == 404
    assert "fileUrl" in response.json()["message"]


@pytest.mark.parametrize(
    ("content_type", "body", "detail_key"),
    [
        ("multipart", {"note": "no file here"}, "file"),
        ("application/json", b"{not json", None),
        ("image/png", b"raw bytes", None),
        ("json", {}, "fileUrl"),
    ],
    ids=["multipart-without-file", "malformed-json", "raw-body", "empty-json"],
)
def test_a_post_with_neither_a_file_nor_a_valid_link_is_400(
    client_for, alice, message, content_type, body, detail_key
):
    client, url = client_for(alice), attachments_url(message.pk)
    if isinstance(body, bytes):
        response = client.generic("POST", url, body, content_type=content_type)
    else:
        response = client.post(url, body, format=content_type)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    if detail_key:
        assert detail_key in response.json()["details"]
    assert Attachment.objects.count() == 0


# --- Who may ------------------------------------------------------------------------------


def test_a_non_member_is_refused_403_on_upload_list_download_and_delete(
    client_for, alice, carol, message
):
    stored = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()
    outsider = client_for(carol)

    responses = {
        "upload": upload(outsider, message.pk, "pixel.png", png_bytes()),
        "link": outsider.post(attachments_url(message.pk), link_body(), format="json"),
        "list": outsider.get(attachments_url(message.pk)),
        "detail": outsider.get(detail_url(stored["id"])),
        "download": outsider.get(download_url(stored["id"])),
        "delete": outsider.delete(detail_url(stored["id"])),
    }

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 403)
    assert Attachment.objects.count() == 1


def test_a_member_who_is_not_the_author_cannot_attach(client_for, bob, message):
    file_response = upload(client_for(bob), message.pk, "pixel.png", png_bytes())
    link_response = client_for(bob).post(attachments_url(message.pk), link_body(), format="json")

    assert (file_response.status_code, link_response.status_code) == (403, 403)
    assert file_response.json()["code"] == "FORBIDDEN"
    assert Attachment.objects.count() == 0


def test_a_deleted_message_takes_no_attachments_and_hides_its_own(client_for, alice, message):
    stored = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()
    message_delete(user=alice, message_id=message.pk)

    refused = upload(client_for(alice), message.pk, "again.png", png_bytes())

    assert refused.status_code == 400 and refused.json()["code"] == "VALIDATION_ERROR"
    assert client_for(alice).get(attachments_url(message.pk)).json() == []
    assert client_for(alice).get(download_url(stored["id"])).status_code == 404


def test_unknown_message_or_attachment_is_404(client_for, alice):
    missing = "00000000-0000-4000-8000-000000000000"

    assert client_for(alice).get(attachments_url(missing)).status_code == 404
    assert client_for(alice).get(download_url(missing)).status_code == 404
    assert client_for(alice).delete(detail_url(missing)).status_code == 404


def test_no_credentials_is_401(client_for, message):
    assert client_for().get(attachments_url(message.pk)).status_code == 401


# --- Download ------------------------------------------------------------------------------


def test_download_sends_the_stored_bytes_as_an_attachment_with_nosniff(
    client_for, alice, bob, message
):
    data = png_bytes()
    stored = upload(client_for(alice), message.pk, "pixel.png", data).json()

    response = client_for(bob).get(stored["fileUrl"])

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="pixel.png"'
    assert response["Content-Length"] == str(len(data))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_download_of_a_text_file_names_its_charset_and_quotes_unicode_names(
    client_for, alice, message
):
    stored = upload(client_for(alice), message.pk, "résumé.txt", b"bonjour").json()

    response = client_for(alice).get(stored["fileUrl"], HTTP_ACCEPT="application/octet-stream")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"


def test_download_over_asgi_streams_the_file_without_a_sync_iterator_warning(
    client_for, alice, message
):
    data = png_bytes(40, 40) * 50
    stored = upload(client_for(alice), message.pk, "big.png", data).json()
    transport = httpx.ASGITransport(app=get_asgi_application())
    headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get(stored["fileUrl"], headers=headers)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = async_to_sync(fetch)()

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-disposition"] == 'attachment; filename="big.png"'
    assert not [w for w in caught if "iterator" in str(w.message)]


# --- Delete --------------------------------------------------------------------------------


def test_delete_answers_204_and_removes_the_row_and_the_stored_file(
    client_for, alice, room, message
):
    stored = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()

    response = client_for(alice).delete(detail_url(stored["id"]))

    assert response.status_code == 204
    assert Attachment.objects.count() == 0
    assert stored_files(room) == []
    assert client_for(alice).get(download_url(stored["id"])).status_code == 404


def test_a_plain_member_cannot_remove_someone_elses_attachment_but_the_owner_can(
    client_for, alice, bob, room, message
):
    alices = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()
    bobs_message = message_send(author=bob, session_id=room.pk, content="mine")
    bobs = upload(client_for(bob), bobs_message.pk, "pixel.png", png_bytes()).json()

    assert client_for(bob).delete(detail_url(alices["id"])).status_code == 403
    assert client_for(alice).delete(detail_url(bobs["id"])).status_code == 204, "alice owns room"
    assert [str(pk) for pk in Attachment.objects.values_list("id", flat=True)] == [alices["id"]]


# --- Broadcasts ----------------------------------------------------------------------------


def test_adding_an_attachment_broadcasts_message_edited_without_marking_the_text_edited(
    client_for, alice, room, message, listen
):
    drain = listen(room)

    stored = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()

    [frame] = drain()
    current = message_get(message.pk)
    assert frame == {
        "event": event_types.MESSAGE_EDITED,
        "data": event_types.message_edited(render(current)),
        "seq": 2,
    }
    broadcast = frame["data"]["message"]
    assert broadcast["attachments"] == [stored]
    assert broadcast["isEdited"] is False and broadcast["editedAt"] is None
    assert broadcast["content"] == "see attached"
    assert Message.objects.get(pk=message.pk).updated_at > message.updated_at


def test_deleting_an_attachment_broadcasts_message_edited_without_it(
    client_for, alice, room, message, listen
):
    stored = upload(client_for(alice), message.pk, "pixel.png", png_bytes()).json()
    drain = listen(room)

    client_for(alice).delete(detail_url(stored["id"]))

    [frame] = drain()
    assert frame["event"] == event_types.MESSAGE_EDITED and frame["seq"] == 3
    assert frame["data"]["message"]["attachments"] == []


def test_a_refused_upload_broadcasts_nothing(client_for, alice, room, message, listen):
    drain = listen(room)

    upload(client_for(alice), message.pk, "x.png", HTML)

    assert drain() == []


# --- Paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("slash", [False, True], ids=["no-slash", "slash"])
def test_every_attachment_path_works_with_and_without_a_trailing_slash(
    client_for, alice, message, slash
):
    client = client_for(alice)
    end = "/" if slash else ""

    created = client.post(attachments_url(message.pk) + end, link_body(), format="json")
    stored = upload(client, message.pk, "pixel.png", png_bytes()).json()

    assert created.status_code == 201
    assert client.get(attachments_url(message.pk) + end).status_code == 200
    assert client.get(download_url(stored["id"]) + end).status_code == 200
    assert client.get(detail_url(stored["id"]) + end).status_code == 200
    assert client.delete(detail_url(created.json()["id"]) + end).status_code == 204
