"""``chat.message_details``: a page's messages come with their author, reactions and
attachments loaded, oldest detail first, as model instances read from their tables; they
render as a plain read of the same rows does, or clients would see the history change
shape."""

from datetime import UTC, datetime

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.serializers import UserSerializer, render_user
from chat.message_details import detailed_messages, messages_with_details
from chat.models import Attachment, Message, Reaction
from chat.serializers import MessageSerializer, render_message
from chat.services.attachments import attachment_add_file, attachment_add_url
from chat.services.messages import message_delete, message_send

pytestmark = pytest.mark.django_db

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def rendered(messages) -> bytes:
    return orjson.dumps(MessageSerializer(messages, many=True).data)


@pytest.fixture
def detailed(room, alice, bob):
    """Messages with and without reactions and attachments of every kind."""
    plain = message_send(author=alice, session_id=room.pk, content="plain")
    rich = message_send(author=alice, session_id=room.pk, content="rich, for @bob and @Alice.")
    message_send(author=bob, session_id=room.pk, content="a reply", parent_id=rich.pk)
    Reaction.objects.create(message=rich, user=bob, emoji="🎉")
    Reaction.objects.create(message=rich, user=alice, emoji="👍")
    Reaction.objects.create(message=rich, user=bob, emoji="👍")
    attachment_add_url(
        user=alice, message_id=rich.pk, file_name="spec.pdf",
        file_url="https://example.com/spec.pdf?v=1&x=é", mime_type="application/pdf",
        file_size=12_345_678_901, metadata={"pages": 3, "tags": ["a", None], "nested": {"k": 1.5}},
    )  # fmt: skip
    attachment_add_file(
        user=alice, message_id=rich.pk, upload=SimpleUploadedFile("dot.png", PNG, "image/png")
    )
    # A time with no microseconds: JSON writes it without a fraction.
    Attachment.objects.filter(file_name="spec.pdf").update(
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    return [plain, rich]


def test_a_page_renders_as_a_plain_read_of_its_rows_does(room, detailed):
    loaded = messages_with_details(detailed_messages().filter(session=room).order_by("seq"))
    plain = list(Message.objects.filter(session=room).order_by("seq"))
    for message in plain:
        message.reaction_list = list(message.reactions.order_by("created_at", "id"))
        message.attachment_list = list(message.attachments.order_by("created_at", "id"))
        message.mention_list = [
            {"user": render_user(m.user), "offset": m.offset, "length": m.length}
            for m in message.mentions.order_by("offset")
        ]

    assert rendered(loaded) == rendered(plain)
    assert not any(message.get_deferred_fields() for message in loaded)
    rich = loaded[1]
    assert [r.emoji for r in rich.reaction_list] == ["🎉", "👍", "👍"]
    assert [a.file_name for a in rich.attachment_list] == ["spec.pdf", "dot.png"]
    assert [m["user"]["username"] for m in rich.mention_list] == ["bob", "alice"]


def test_reactions_and_attachments_are_model_instances_as_read_from_the_table(room, detailed):
    (rich,) = messages_with_details(detailed_messages().filter(pk=detailed[1].pk))

    for loaded in (*rich.reaction_list, *rich.attachment_list):
        stored = type(loaded).objects.get(pk=loaded.pk)
        assert {f.attname: getattr(loaded, f.attname) for f in stored._meta.concrete_fields} == {
            f.attname: getattr(stored, f.attname) for f in stored._meta.concrete_fields
        }


def test_the_broadcast_renderer_renders_as_a_new_serializer_does(room, alice, detailed):
    message_delete(user=alice, message_id=detailed[0].pk)
    messages = messages_with_details(detailed_messages().filter(session=room).order_by("seq"))
    assert any(m.is_deleted for m in messages) and any(m.attachment_list for m in messages)

    for message in messages:
        assert orjson.dumps(render_message(message)) == orjson.dumps(
            MessageSerializer(message).data
        )
    assert render_user(alice) == dict(UserSerializer(alice).data)
