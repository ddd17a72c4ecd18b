"""An in-memory pair: live_nb's ClientProtocol against the emulator's ServerProtocol, no sockets.

h11's ConnectionPair idea: frames the client queues (``data_to_send``) go into the server's
``receive``; frames the server queues go into the client's ``receive``. Replies are paced by the
caller (``stream``) or run to the end (``pump`` does, unless ``hold_replies``). The clock is a
number the test moves (``now``). The server's durable half is a real ``Store`` on ``:memory:``.
"""

from __future__ import annotations

from live_nb.emulator.engine import EngineSettings, ReplyPlan
from live_nb.emulator.responder import ContextResponder, Responder
from live_nb.emulator.server_protocol import Closing, ReplyStarted, ServerProtocol
from live_nb.emulator.sessions import SessionBook
from live_nb.emulator.store import Store
from live_nb.protocol.client_protocol import CONNECTING, DISCONNECTED, ClientProtocol
from live_nb.protocol.messages import ServerMessage


class ProtocolPair:
    """One client session and the emulator's connections to it, moved by hand.

    Args:
        client: the client protocol (its setup is sent by ``connect``).
        flavor: the path flavour the server serves (``vertex`` or ``gemini``).
        book: the emulator's sessions (a fresh one over an in-memory store by default; pass
            another pair's book to share sessions and handles).
        responder: the model (``ContextResponder`` by default).
        hold_replies: leave replies for ``stream`` instead of running them to the end in ``pump``.
    """

    def __init__(
        self,
        client: ClientProtocol,
        flavor: str = "vertex",
        book: SessionBook | None = None,
        responder: Responder | None = None,
        hold_replies: bool = False,
        settings: EngineSettings | None = None,
    ) -> None:
        self.client = client
        self.flavor = flavor
        if book is None:
            book = SessionBook()
            book.store = Store(":memory:")
        self.book = book
        self.responder = responder or ContextResponder()
        self.hold_replies = hold_replies
        self.settings = settings or EngineSettings()
        self.now = 1_000_000.0
        """The clock both sides are given (seconds; tests move it)."""
        self.server: ServerProtocol | None = None
        self.received: list[ServerMessage] = []
        """Every message the client received, in order (all connections)."""
        self.raw: list[str | bytes] = []
        """Every frame the server wrote, in order (all connections)."""
        self.closes: list[Closing] = []
        """Every close the server asked for."""
        self.replies: list[ReplyPlan] = []
        """Replies started and not yet run to the end (with ``hold_replies``)."""

    @property
    def api_version(self) -> str:
        return "v1beta1" if self.flavor == "vertex" else "v1beta"

    def connect(self) -> ServerProtocol:
        """Open a new connection: the client's setup goes to a fresh ServerProtocol; returns it."""
        if self.client.state is DISCONNECTED:
            self.client.connection_made()
        if self.client.state is CONNECTING:
            self.client.send_setup()
        self.server = ServerProtocol(
            self.book, self.flavor, self.api_version, self.responder, self.settings
        )
        self.replies.clear()
        self.pump()
        return self.server

    def pump(self, keep: int | None = None) -> None:
        """Deliver the client's frames to the server (with ``keep``, only the first ``keep`` arrive), then back."""
        server = self._server()
        frames = self.client.data_to_send()
        for frame in frames[:keep]:
            if server.closed:
                break
            server.receive(frame, self.now)
            self.deliver()

    def deliver(self) -> None:
        """Move the server's output to the client; run replies to the end unless held."""
        server = self._server()
        while True:
            frames = server.data_to_send()
            events = server.events_received()
            for frame in frames:
                self.raw.append(frame)
                self.received.extend(self.client.receive(frame, self.now))
            for event in events:
                if isinstance(event, ReplyStarted):
                    self.replies.append(event.plan)
                elif isinstance(event, Closing):
                    self.closes.append(event)
            if not self.hold_replies and self.replies:
                self.stream()
            if not server.has_output:
                return

    def stream(self, chunks: int | None = None) -> None:
        """Send up to ``chunks`` chunks of the oldest reply (all by default), finishing it when done."""
        server = self._server()
        while self.replies:
            plan = self.replies[0]
            sent = 0
            while (chunks is None or sent < chunks) and server.send_chunk(plan):
                sent += 1
                self.deliver_frames()
            if plan.sent < len(plan.chunks) and not plan.cancelled and not server.closed:
                return  # paused by the caller
            self.replies.pop(0)
            if plan.sent == len(plan.chunks):
                server.finish_reply(plan, self.now)
                self.deliver_frames()
            if chunks is not None:
                return

    def deliver_frames(self) -> None:
        """Move only the server's frames (events stay for ``deliver``)."""
        for frame in self._server().data_to_send():
            self.raw.append(frame)
            self.received.extend(self.client.receive(frame, self.now))

    def drop(self) -> None:
        """The connection ends (a network drop): both sides hear of it."""
        server = self._server()
        if server.session is not None:
            self.book.connection_closed(server.session, None, self.now)
        self.client.connection_lost()

    def _server(self) -> ServerProtocol:
        assert self.server is not None, "connect() first"
        return self.server
