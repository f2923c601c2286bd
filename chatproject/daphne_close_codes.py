"""Let the application close a WebSocket with 1009 ("message too big") under daphne.

RFC 6455 lets an endpoint send 1009, and the contract asks the application to close an
oversized frame with it whichever server runs it. daphne passes the application's close
code to autobahn's ``sendClose``, which accepts only 1000 and 3000-4999, so under daphne a
1009 became a 1011 "internal error". This sends that one code with autobahn's lower-level
``sendCloseFrame`` instead; every other code takes daphne's path unchanged.

daphne's own ``--websocket-max-message-size`` drops the TCP connection without a close
frame (autobahn's fail-by-drop), so it is set above 64 KiB (README) and the application's
check is what a client sees.
"""

from daphne.ws_protocol import WebSocketProtocol

MESSAGE_TOO_BIG = 1009
_daphne_server_close = WebSocketProtocol.serverClose


def _server_close(self, code=None):
    if code == MESSAGE_TOO_BIG:
        self.sendCloseFrame(code=code, isReply=False)
        return
    _daphne_server_close(self, code)


def install() -> None:
    WebSocketProtocol.serverClose = _server_close
