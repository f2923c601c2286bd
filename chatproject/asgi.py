"""The ASGI application: Django for HTTP, the consumers of ``chatproject.routing`` for
WebSockets (``chatproject.entry``).

Served by daphne (``daphne chatproject.asgi:application``) or uvicorn alike.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings.local")
django_asgi_app = get_asgi_application()

from chat.broadcaster import LoopBinding  # noqa: E402
from chatproject import daphne_close_codes  # noqa: E402
from chatproject.body_limit import BodyLimitGuard  # noqa: E402
from chatproject.entry import Application  # noqa: E402
from chatproject.routing import websocket_urlpatterns  # noqa: E402

daphne_close_codes.install()

application = Application(websocket_urlpatterns, http=LoopBinding(BodyLimitGuard(django_asgi_app)))

# Everything loaded so far (Django, the apps, the libraries) lives as long as the process:
# keep it out of the collector's full passes, which with 10,000 open sockets paused the
# event loop for seconds (docs/benchmarks.md, idle connections).
gc.freeze()
