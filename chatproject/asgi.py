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
# A full collection still walks everything made since (every socket's objects, Django's lazy
# caches): 60-150 ms here with 200 sockets open, and at the default pace (one per 10 passes
# of the middle generation) it came about once a second under load, the worst of a
# message's delivery times (bench/fanout.py, 22 Nov: 11 full passes over 20 ms in a run, 1
# at one per 100). Young garbage is still collected as often as before.
gc.set_threshold(700, 10, 100)
