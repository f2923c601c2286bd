"""How a user looks on the wire (``{id, username}``) and what registration accepts."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from chatproject.reused_serializer import ReusedSerializer

User = get_user_model()


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


# A user as frames show it, without making a serializer each time
# (``chatproject.reused_serializer``).
render_user = ReusedSerializer(UserSerializer)


class MeSerializer(UserSerializer):
    # An address, or "" when the user gave none (so not a schema "email" format).
    email = serializers.CharField(read_only=True)
    isStaff = serializers.BooleanField(source="is_staff", read_only=True)
    isBot = serializers.BooleanField(source="is_bot", read_only=True)
    dateJoined = serializers.DateTimeField(source="date_joined", read_only=True)


class UsernameInput(serializers.Serializer):
    """The username a new account may take, the same for a person and a bot."""

    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=150,
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
    )


class RegisterInputSerializer(UsernameInput):
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class TokenInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshInputSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class BotSerializer(UserSerializer):
    """A bot account as staff see it."""

    isBot = serializers.BooleanField(source="is_bot", read_only=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    dateJoined = serializers.DateTimeField(source="date_joined", read_only=True)


class BotCreateInput(UsernameInput):
    """What staff send to make a bot: its username only, under a person's rules."""


class BotTokenSerializer(serializers.Serializer):
    """A bot token without its secret: ``id`` is its ``token_id``, never the digest."""

    id = serializers.UUIDField(source="token_id", read_only=True)
    name = serializers.CharField(read_only=True)
    createdAt = serializers.DateTimeField(source="created", read_only=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)


class BotTokenCreatedSerializer(BotTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text="The token itself: shown this once, never stored."
    )


class BotTokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
