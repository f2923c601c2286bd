"""Template filters of the web app's chat pages."""

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

AVATAR_HUES = 10


@register.filter
def avatar_hue(user_id) -> int:
    """Which of the stylesheet's avatar colours (``hue-0`` … ``hue-9``) a user gets: the
    same one ``static/js/format.js`` picks, so a person looks the same everywhere."""
    try:
        return int(user_id) % AVATAR_HUES
    except (TypeError, ValueError):
        return 0


@register.filter
def initial(name) -> str:
    """The first letter of a name, upper-cased, for an avatar."""
    return str(name or "?")[:1].upper()


@register.filter
def ago(value) -> str:
    """ "just now", or Django's ``timesince`` with "ago"."""
    if not value:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"
