"""ClientProtocol, sans-I/O: no socket, no event loop. Pattern: call send_*, assert on data_to_send()."""

from __future__ import annotations

import json

import pytest

from live_nb.exceptions import InvalidState, LocalProtocolError, RemoteProtocolError
from live_nb.protocol.client_protocol import (
    ACTIVE,
    CLOSED,
    CONNECTING,
    DISCONNECTED,
    GOING_AWAY,
    SETUP_SENT,
    TRANSITIONS,
    ClientProtocol,
    State,
)
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.content import FunctionResponse
from live_nb.protocol.messages import (
    GoAway,
    ServerContent,
    SessionResumptionUpdate,
    SetupComplete,
    encode_server_frame,
    parse_client_frame,
)

MODEL = "models/gemini-3.8-live"
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)  # today's default


def frame(message: object) -> bytes:
    return encode_server_frame(message)  # type: ignore[arg-type]


def update(handle: str, lci: int | None = None, resumable: bool = True) -> bytes:
    return frame(SessionResumptionUpdate(handle, resumable, lci))


def opened(transparent: bool = True, **kwargs: object) -> ClientProtocol:
    proto = ClientProtocol(
        MODEL, CONFIG, SessionResumptionConfig(transparent=transparent), **kwargs  # type: ignore[arg-type]
    )
    proto.send_setup()
    proto.receive(frame(SetupComplete("s1")), now=0.0)
    proto.data_to_send()
    return proto


def reconnect(proto: ClientProtocol, now: float = 0.0) -> list[str]:
    proto.connection_lost()
    proto.connection_made()
    proto.send_setup()
    setup = proto.data_to_send()
    assert len(setup) == 1 and json.loads(setup[0]).keys() == {"setup"}
    proto.receive(frame(SetupComplete("s1")), now)
    return proto.data_to_send()


def texts(frames: list[str]) -> list[str]:
    out = []
    for f in frames:
        msg = parse_client_frame(f)
        out.append(msg.turns[0].text if hasattr(msg, "turns") else type(msg).__name__)  # type: ignore[union-attr]
    return out


def test_setup_is_first_and_carries_model_config_and_resumption() -> None:
    proto = ClientProtocol(MODEL, CONFIG, SessionResumptionConfig(handle="h0", transparent=True))
    assert proto.state is CONNECTING
    proto.send_setup()
    assert proto.state is SETUP_SENT
    (setup,) = proto.data_to_send()
    body = json.loads(setup)["setup"]
    assert body["model"] == MODEL
    assert body["generationConfig"] == {"responseModalities": ["AUDIO"]}
    assert body["outputAudioTranscription"] == {}
    assert body["sessionResumption"] == {"handle": "h0", "transparent": True}


def test_sends_wait_for_setup_complete_then_go_out_in_order() -> None:
    proto = ClientProtocol(MODEL, CONFIG, None)
    proto.send_setup()
    proto.data_to_send()
    proto.send_content("a", turn_complete=False)
    proto.send_content("b")
    assert proto.data_to_send() == []  # not before setupComplete (docs: wait for it)
    proto.receive(frame(SetupComplete()), now=0.0)
    assert proto.state is ACTIVE
    assert texts(proto.data_to_send()) == ["a", "b"]
    assert proto.index == 2


def test_indexes_count_from_one_after_setup_and_restart_per_connection() -> None:
    proto = opened()
    for word in "abc":
        proto.send_content(word, turn_complete=False)
    assert proto.index == 3
    replay = reconnect(proto)
    assert texts(replay) == ["a", "b", "c"]
    assert proto.index == 3  # the replayed messages are 1..3 on the new connection
    proto.send_content("d", turn_complete=False)
    assert proto.index == 4


def test_update_trims_buffer_up_to_last_consumed_index() -> None:
    proto = opened()
    for word in "abcde":
        proto.send_content(word, turn_complete=False)
    assert proto.replay_depth == 5
    proto.receive(update("h1", 3), now=0.0)
    assert proto.handle == "h1" and proto.resumable and proto.last_consumed_index == 3
    assert proto.replay_depth == 2
    assert texts(reconnect(proto)) == ["d", "e"]
    report = proto.resume_report()
    assert report is not None
    assert (report.state_restored, report.replayed, report.possibly_lost) == (True, 2, 0)


def test_resume_uses_latest_handle_and_ignores_non_resumable_updates() -> None:
    proto = opened()
    proto.receive(update("h1", 0), now=0.0)
    proto.receive(update("", None, resumable=False), now=0.0)
    assert proto.handle == "h1" and not proto.resumable
    proto.connection_lost()
    proto.connection_made()
    proto.send_setup()
    (setup,) = proto.data_to_send()
    assert json.loads(setup)["setup"]["sessionResumption"]["handle"] == "h1"


def test_sends_during_reconnect_go_after_the_replay() -> None:
    proto = opened()
    proto.send_content("old1", turn_complete=False)
    proto.send_content("old2", turn_complete=False)
    proto.receive(update("h1", 1), now=0.0)
    proto.connection_lost()
    assert proto.state is DISCONNECTED
    proto.send_content("new1", turn_complete=False)  # during the reconnect: waits
    assert proto.data_to_send() == []
    proto.connection_made()
    proto.send_setup()
    proto.data_to_send()
    proto.send_content("new2", turn_complete=False)  # setup sent, no setupComplete yet: waits
    proto.receive(frame(SetupComplete()), now=0.0)
    assert texts(proto.data_to_send()) == ["old2", "new1", "new2"]
    report = proto.resume_report()
    assert report is not None and report.replayed == 1  # new1/new2 were never sent: not "replayed"


def test_go_away_deadline_uses_the_callers_clock() -> None:
    proto = opened()
    proto.receive(frame(GoAway(time_left=50.0)), now=1000.0)
    assert proto.state is GOING_AWAY
    assert proto.go_away_deadline == pytest.approx(1050.0)
    proto.send_content("still allowed", turn_complete=False)
    assert len(proto.data_to_send()) == 1
    reconnect(proto)
    assert proto.go_away_deadline is None and proto.state is ACTIVE


def test_replay_buffer_bound_drops_oldest_and_counts_possibly_lost() -> None:
    one = len('{"realtimeInput":{"audio":{"data":"') + 4 + len('","mimeType":"audio/pcm;rate=16000"}}}')
    proto = opened(max_replay_bytes=one * 3)
    for _ in range(5):
        proto.send_audio(b"\x00\x01\x02")
    assert proto.replay_depth == 3 and proto.replay_bytes <= one * 3
    assert proto.dropped_total == 2
    reconnect(proto)
    report = proto.resume_report()
    assert report is not None and report.replayed == 3 and report.possibly_lost == 2


def test_dropped_message_later_confirmed_is_not_counted_lost() -> None:
    proto = opened(max_replay_bytes=200)
    for word in ["x" * 60, "y" * 60, "z" * 60]:
        proto.send_content(word, turn_complete=False)
    assert proto.dropped_total >= 1
    proto.receive(update("h1", 3), now=0.0)  # the server had everything after all
    assert proto.replay_depth == 0
    reconnect(proto)
    report = proto.resume_report()
    assert report is not None and report.possibly_lost == 0


def test_plain_mode_keeps_no_buffer_and_says_what_may_be_lost() -> None:
    proto = opened(transparent=False)
    proto.send_content("a", turn_complete=False)
    proto.receive(update("h1"), now=0.0)
    proto.send_audio(b"\x00\x00")
    proto.send_audio(b"\x00\x00")
    assert proto.replay_depth == 0
    assert reconnect(proto) == []
    report = proto.resume_report()
    assert report is not None and (report.replayed, report.possibly_lost) == (0, 2)


def test_fresh_session_after_loss_without_handle_is_not_restored() -> None:
    proto = ClientProtocol(MODEL, CONFIG, None)
    proto.send_setup()
    proto.receive(frame(SetupComplete()), now=0.0)
    reconnect(proto)
    report = proto.resume_report()
    assert report is not None and not report.state_restored


def test_generation_tracking_and_clean_point() -> None:
    proto = opened()
    proto.receive(update("h0", 0), now=0.0)
    assert proto.at_clean_point
    proto.send_content("q")
    assert proto.generating and not proto.at_clean_point
    proto.receive(frame(ServerContent(turn_complete=True)), now=0.0)
    assert not proto.at_clean_point  # the handle predates the turn
    proto.receive(update("h1", 1), now=0.0)
    assert proto.at_clean_point
    proto.send_tool_response([FunctionResponse("f", {"r": 1}, id="1")])
    assert proto.generating


def test_close_makes_sends_invalid_with_a_clear_message() -> None:
    proto = opened()
    proto.close()
    assert proto.state is CLOSED
    with pytest.raises(InvalidState, match="closed"):
        proto.send_content("late")
    with pytest.raises(InvalidState):
        proto.send_setup()
    proto.close()  # idempotent
    proto.connection_lost()  # harmless after close


def test_invalid_transitions_raise() -> None:
    proto = ClientProtocol(MODEL, CONFIG)
    with pytest.raises(InvalidState):
        proto.connection_made()  # not disconnected
    proto.send_setup()
    with pytest.raises(InvalidState):
        proto.send_setup()
    with pytest.raises(LocalProtocolError):
        ClientProtocol(MODEL, CONFIG, max_replay_bytes=0)


def test_every_state_has_a_row_in_the_table_and_public_names() -> None:
    assert set(TRANSITIONS) == set(State)
    assert {s.public_name for s in State} == {"connecting", "active", "going_away", "reconnecting", "closed"}


def test_malformed_frame_raises_remote_protocol_error_with_excerpt() -> None:
    proto = opened()
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive(b"{not json at all", now=0.0)
    assert "not json" in info.value.excerpt
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive(b'{"goAway": {"timeLeft": "soon"}}', now=0.0)
    assert info.value.excerpt == '{"goAway": {"timeLeft": "soon"}}' and "soon" in info.value.reason


def test_events_received_drains() -> None:
    proto = opened()
    proto.events_received()
    proto.receive(frame(ServerContent(turn_complete=True)), now=0.0)
    assert len(proto.events_received()) == 1
    assert proto.events_received() == []


# ProtocolPair: our ClientProtocol against the emulator's sans-I/O ServerEngine, in memory (h11's
# ConnectionPair idea). It checks the index convention of live-protocol.md section 8 end to end
# without a socket: messages lost in flight at random points are replayed exactly once, in order.


class ProtocolPair:
    """Moves frames between a ClientProtocol and emulator ServerEngines; snapshots kept in a dict."""

    def __init__(self, client: ClientProtocol) -> None:
        from live_nb.emulator.engine import SessionState

        self.client = client
        self.consumed: list[object] = []
        self.snapshots: dict[str, tuple[dict[str, object], int]] = {}
        self.state = SessionState(session_id="s-pair", model=MODEL.removeprefix("models/"))
        self.engine: object = None

    def connect(self) -> None:
        from live_nb.emulator.engine import ServerEngine, SessionState
        from live_nb.emulator.responder import ContextResponder

        (frame,) = self.client.data_to_send()
        setup = parse_client_frame(frame)
        handle = setup.session_resumption.handle if setup.session_resumption else None  # type: ignore[union-attr]
        if handle:
            state_json, consumed_count = self.snapshots[handle]
            self.state = SessionState.from_json(state_json)
            del self.consumed[consumed_count:]
        else:  # a fresh session (the client had no handle yet): nothing of the old one survives
            self.state = SessionState(session_id="s-pair", model=MODEL.removeprefix("models/"))
            self.consumed.clear()
        self.engine = ServerEngine(setup, self.state, self.consumed, ContextResponder(), resumed=bool(handle))  # type: ignore[arg-type]
        self.deliver(self.engine.start())  # type: ignore[attr-defined]

    def deliver(self, actions: list[object]) -> None:
        from live_nb.emulator.engine import Checkpoint, Send, Stream

        for action in actions:
            if isinstance(action, Send):
                self.client.receive(encode_server_frame(action.message, action.usage), now=0.0)
            elif isinstance(action, Stream):
                for chunk in action.plan.chunks:
                    self.client.receive(encode_server_frame(chunk), now=0.0)
                    self.engine.chunk_sent(action.plan)  # type: ignore[attr-defined]
                self.deliver(self.engine.finish_reply(action.plan))  # type: ignore[attr-defined]
            elif isinstance(action, Checkpoint):
                handle = f"h{len(self.snapshots)}"
                self.snapshots[handle] = (dict(action.state), len(self.consumed))
                self.client.receive(update(handle, action.index), now=0.0)

    def pump(self, keep: int | None = None) -> None:
        """Deliver the client's frames to the server; with ``keep``, only the first ``keep`` arrive."""
        frames = self.client.data_to_send()
        for frame in frames[:keep]:
            self.deliver(self.engine.receive(parse_client_frame(frame)))  # type: ignore[attr-defined]

    def periodic(self) -> None:
        self.deliver(self.engine.periodic())  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(8))
def test_protocol_pair_replays_exactly_what_the_server_lost(seed: int) -> None:
    import random

    rng = random.Random(seed)
    client = ClientProtocol(MODEL, CONFIG, SessionResumptionConfig(transparent=True))
    client.send_setup()
    pair = ProtocolPair(client)
    pair.connect()
    sent: list[str] = []
    for step in range(300):
        if step % 25 == 24:
            client.send_content(f"question {step}")
            sent.append(f"question {step}")
        else:
            client.send_content(f"note {step}", turn_complete=False)
            sent.append(f"note {step}")
        roll = rng.random()
        if roll < 0.1:
            # The connection dies with some frames in flight: the server got only a prefix.
            pair.pump(keep=rng.randint(0, 1))
            client.connection_lost()
            client.connection_made()
            client.send_setup()
            pair.connect()
            pair.pump()
        elif roll < 0.4:
            pair.pump()
            pair.periodic()
        # else: frames wait in data_to_send (written later, as a busy socket would)
    pair.pump()
    texts = [m.turns[0].text for m in pair.consumed]  # type: ignore[attr-defined]
    assert texts == sent
    assert client.connections > 10
