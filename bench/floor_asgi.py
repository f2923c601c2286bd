"""The stack's floor: the least a Channels application on daphne does per message.

``bench/fanout.py --floors`` serves this in place of the platform, to tell what the fixed
stack costs before any of the platform's own work (no authentication, no validation, no
throttle, no event log): a stock ``AsyncWebsocketConsumer`` joins the room named by its path
and relays every frame it receives to the room as it came, the shape of the raw
``websockets`` relay.

Every frame goes through the channels-redis pub/sub layer (``group_send``) and each member's
consumer ``send``, as a Channels application is written.
- ``FLOOR_STORE=1``: first one ``INSERT`` of the frame per message, through Django's
  database layer in ``database_sync_to_async`` (table ``floor_message``, made by the
  benchmark).
"""

import os

import dj_database_url
import django
from django.conf import settings

settings.configure(
    DATABASES={
        # Pooled as the platform's connections are (psycopg's pool, through Django's own
        # support): a new connection per message would measure PostgreSQL's connect.
        "default": dj_database_url.parse(os.environ["FLOOR_DATABASE_URL"], conn_max_age=0)
        | {"OPTIONS": {"pool": {"min_size": 2, "max_size": 20, "timeout": 10}}}
    },
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [os.environ["FLOOR_REDIS_URL"]],
                "prefix": os.environ["FLOOR_PREFIX"],
            },
        }
    },
    INSTALLED_APPS=["channels"],
)
django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.db import connection  # noqa: E402

STORE = os.environ.get("FLOOR_STORE") == "1"
TABLE = "floor_message"


@database_sync_to_async
def store(room: str, body: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (room, body) VALUES (%s, %s)", [room, body])


class Relay(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room = self.scope["path"].strip("/") or "room"
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if STORE:
            await store(self.room, text_data)
        await self.channel_layer.group_send(self.room, {"type": "relay", "text": text_data})

    async def relay(self, event) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": Relay.as_asgi()})
