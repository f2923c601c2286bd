"""Let the application close a WebSocket with 1009 ("message too big") under daphne.

RFC 6455 lets an endpoint send 1009, and the contract asks the application to close an
oversized frame with it whichever server runs it. daphne has no way to send it: the ASGI
``websocket.close`` code goes to autobahn's ``sendClose``, which accepts only 1000 and
3000-4999 (https://github.com/crossbario/autobahn-python/issues/1642, open; daphne's side:
https://github.com/django/daphne/issues/374), so under daphne a 1009 became a 1011 "internal
error"; daphne's own ``--websocket-max-message-size`` drops the TCP connection without any
close frame (autobahn's fail-by-drop, which daphne does not let one turn off). uvicorn sends
the application's code as it is.

The workaround, the one monkeypatch of the project: for that one code, daphne's
``serverClose`` sends the close frame with autobahn's ``sendCloseFrame`` (the method
``sendClose`` ends in, minus the check); every other code takes daphne's path unchanged.
``tests/chatproject/test_daphne_close_codes.py`` pins it against the installed daphne and
autobahn: it fails once they send 1009 themselves (then delete this module) or once the
patched method changes shape.
"""

from daphne.ws_protocol import WebSocketProtocol

MESSAGE_TOO_BIG = 1009
DAPHNE_SERVER_CLOSE = WebSocketProtocol.serverClose


def server_close(self, code=None):
    if code == MESSAGE_TOO_BIG:
        self.sendCloseFrame(code=code, isReply=False)
        return
    DAPHNE_SERVER_CLOSE(self, code)


def install() -> None:
    WebSocketProtocol.serverClose = server_close
