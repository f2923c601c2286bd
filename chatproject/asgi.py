"""The ASGI application: Django for HTTP; for WebSockets the origin check, the auth
middleware and the consumers' routes, in Channels' terms.

Served by daphne (``daphne chatproject.asgi:application``) or uvicorn alike.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings.local")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import WebsocketAuthMiddleware  # noqa: E402
from chat.broadcaster import LoopBinding  # noqa: E402
from chatproject import daphne_close_codes  # noqa: E402
from chatproject.body_limit import BodyLimitGuard  # noqa: E402
from chatproject.origins import OriginCheck  # noqa: E402
from chatproject.routing import websocket_urlpatterns  # noqa: E402

daphne_close_codes.install()

application = ProtocolTypeRouter(
    {
        "http": LoopBinding(BodyLimitGuard(django_asgi_app)),
        # The consumers bind the loop themselves (``GatewayConsumer.connect``).
        "websocket": OriginCheck(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the apps, the libraries) lives as long as the process:
# keep it out of the collector's full passes, which with 10,000 open sockets paused the
# event loop for seconds (docs/benchmarks.md, idle connections).
gc.freeze()
