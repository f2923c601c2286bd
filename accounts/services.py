"""Writes on users: registration and banning."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from chatproject.errors import validation_error

User = get_user_model()


def user_register(*, username: str, password: str, email: str = "") -> User:
    """Create an account, checking the password with Django's validators."""
    if User.objects.filter(username__iexact=username).exists():
        raise validation_error("That username is taken.", {"username": ["That username is taken."]})
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise validation_error("Choose a stronger password.", {"password": exc.messages}) from exc
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:
        raise validation_error(
            "That username is taken.", {"username": ["That username is taken."]}
        ) from exc
    return candidate
