"""Input validation for the REST doors: one call from request data to validated data.

An invalid input raises DRF's ``ValidationError``, which the exception handler
(``chatproject.errors``) turns into ``VALIDATION_ERROR`` with per-field details.
"""

from rest_framework import serializers


def validated(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
