"""``WebsocketAuthMiddleware``: the WebSocket handshake's authentication, as Channels
middleware around the consumers' ``URLRouter`` (``chatproject.asgi``).

It puts in the scope what a consumer needs to follow the contract (CONTRACT section 3):

- ``scope["user"]``: the user the token or session cookie names, an ``AnonymousUser`` when
  neither says who (or the token was refused);
- ``scope["token_exp"]``: the access token's expiry (epoch seconds), None for a session: the
  consumer closes the connection with 4401 then, unless ``auth:refresh`` came first;
- ``scope["bot_token_id"]``: the ``token_id`` of the bot token the socket opened with, None
  otherwise: the consumer closes the socket (4401) when that token is deleted;
- ``scope["auth_error"]``: why a token was refused (bad, expired, a refresh token, its user
  deactivated), None otherwise: the consumer accepts, says ``UNAUTHORIZED`` and closes 4401.

A database or Redis outage while the socket is being opened (this lookup, or Channels making
the consumer's channel in the channel layer before any consumer hook runs) is answered with
an ``error`` frame and close 4503, never an HTTP 500 (``chatproject.ws_outage``). This is the
innermost middleware, the last step of the handshake, so it is where that answer is given.
"""

from __future__ import annotations

from channels.middleware import BaseMiddleware

from chatproject.ws_outage import OutageAnswer

from .auth import authenticate

USER = "user"
TOKEN_EXP = "token_exp"
AUTH_ERROR = "auth_error"
BOT_TOKEN_ID = "bot_token_id"


class WebsocketAuthMiddleware(BaseMiddleware):
    """Authenticates a WebSocket handshake by access JWT (``?token=``, ``Authorization:
    Bearer``), bot token (``Authorization: Token``) or session cookie; a token, when given,
    wins over the cookie."""

    async def __call__(self, scope, receive, send):
        answer = OutageAnswer(send)
        try:
            credentials = await authenticate(scope)
            scope = {
                **scope,
                USER: credentials.user,
                TOKEN_EXP: credentials.token_exp,
                AUTH_ERROR: credentials.error,
                BOT_TOKEN_ID: credentials.bot_token_id,
            }
            return await self.inner(scope, receive, answer.send)
        except Exception as exc:
            if not await answer.answer(exc):
                raise
