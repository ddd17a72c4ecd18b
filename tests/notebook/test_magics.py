"""The magics in an in-process IPython shell (globalipapp): arguments, config, views, lifecycle.

Without a kernel ``%%live`` takes its blocking path (terminal IPython's), and replies stream to
stdout: the transcription of the audio reply, then how long the audio was. Sessions talk to the
real emulator the magics start in-process (Vertex AI's flavour unless a test asks for the Gemini
Developer API's). The kernel-specific behaviour (awaited cells, parent ids, interrupts, comms, the
cell's plain-text transcript and audio player) is in test_kernel_magics.py.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

from live_nb import _loop
from live_nb.client.credentials import find_api_key, read_dotenv
from live_nb.notebook import magics as live_magics
from live_nb.notebook._reply import Renderer, Router, Turn, audio_player, plain_text
from live_nb.notebook.magics import (
    LiveMagics,
    interpolate,
    live_completions,
    parse_compress,
    transform_live_cells,
)
from live_nb.protocol import catalogue
from live_nb.protocol.messages import ClientContent, RealtimeInput

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def shell() -> Any:
    # get_ipython(), not start_ipython(): the latter returns None once another test module (e.g.
    # test_metadata.py in the same run) has started the shared test shell.
    return globalipapp.get_ipython()


def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, no configured backend: the magics use their own emulator, with its database in tmp_path."""
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "LIVE_NB_BACKEND",
        "LIVE_NB_EMULATOR_URL",
        "LIVE_NB_EMULATOR_FLAVOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIVE_NB_EMULATOR_DB", str(tmp_path / "emulator.sqlite3"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ip(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline(tmp_path, monkeypatch)
    shell.run_line_magic("load_ext", "live_nb")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "live_nb")


def magics_of(ip: Any) -> LiveMagics:
    m = ip.magics_manager.registry["LiveMagics"]
    assert isinstance(m, LiveMagics)
    return m


def ask(ip: Any, capsys: pytest.CaptureFixture[str], line: str, body: str) -> str:
    capsys.readouterr()
    ip.run_cell_magic("live", line, body)
    return capsys.readouterr().out


# Extension lifecycle.


def test_load_unload_reload_round_trip(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE_NB_EMULATOR_DB", str(tmp_path / "emu.sqlite3"))
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    shell.run_line_magic("load_ext", "live_nb")
    assert "live" in shell.magics_manager.magics["line"]
    assert "live" in shell.magics_manager.magics["cell"]
    assert transform_live_cells in shell.input_transformers_cleanup
    shell.run_cell_magic("live", "", "hello")
    assert _loop.running()
    first = magics_of(shell)
    shell.run_line_magic("reload_ext", "live_nb")
    assert magics_of(shell) is not first
    assert first.registry.sessions == {}  # reload closed the old instance's sessions
    assert shell.input_transformers_cleanup.count(transform_live_cells) == 1
    shell.run_line_magic("unload_ext", "live_nb")
    assert "live" not in shell.magics_manager.magics["line"]
    assert "live" not in shell.magics_manager.magics["cell"]
    assert "LiveMagics" not in shell.magics_manager.registry
    assert transform_live_cells not in shell.input_transformers_cleanup
    assert not _loop.running()
    assert [t for t in threading.enumerate() if t.name == _loop.THREAD_NAME] == []


def test_transformer_rewrites_live_cells_only_in_a_kernel(ip: Any) -> None:
    # No kernel: the cell stays a cell magic (blocking path).
    assert "await" not in ip.transform_cell("%%live\nhello\n")
    ip.kernel = object()
    try:
        code = ip.transform_cell("%%live chat --async\nhello {name}\n")
        assert code.startswith("await get_ipython().magics_manager.registry['LiveMagics'].live_cell_async(")
        assert "'chat --async'" in code and "'hello {name}\\n'" in code
        assert "await" not in ip.transform_cell("%%lively\nx\n")
        assert "await" not in ip.transform_cell("%%live?\n")
        assert "await" not in ip.transform_cell("print(1)\n")
    finally:
        del ip.kernel


# Pure helpers.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tell me about {city}.", "Tell me about Lisbon."),
        ("{n:03d} and {n!r}", "007 and 7"),
        ("{city.upper}", "{city.upper}"),  # a method object's format is its repr: left alone? no, see below
        ("{missing} stays", "{missing} stays"),
        ('{"json": 1} and def f(): return {1: 2}', '{"json": 1} and def f(): return {1: 2}'),
        ("{{literal}} {city}", "{literal} Lisbon"),
        ("{obj.name}", "widget"),
        ("{obj.nope}", "{obj.nope}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    class Obj:
        name = "widget"

    ns = {"city": "Lisbon", "n": 7, "obj": Obj()}
    if text == "{city.upper}":
        assert interpolate(text, ns).startswith("<built-in method upper")
        return
    assert interpolate(text, ns) == expected


def test_parse_compress() -> None:
    assert parse_compress("") is None and parse_compress("off") is None
    default = parse_compress("default")
    assert default is not None and default.effective_trigger_tokens == 102_400
    config = parse_compress("20k:8k")
    assert config is not None and (config.trigger_tokens, config.effective_target_tokens) == (20_000, 8_000)
    only_trigger = parse_compress("20000")
    assert only_trigger is not None and only_trigger.effective_target_tokens == 10_000
    for bad in ("abc", "1000", "20000:30000", "200000", "20000:x"):
        with pytest.raises(UsageError) as info:
            parse_compress(bad)
        assert "\n" not in str(info.value)


def test_find_api_key_from_env_and_dotenv(tmp_path: Path) -> None:
    assert find_api_key(tmp_path, environ={}) is None
    key = find_api_key(tmp_path, environ={"GOOGLE_API_KEY": "env-secret"})
    assert key is not None and key.value == "env-secret" and key.name == "GOOGLE_API_KEY"
    assert "env-secret" not in repr(key) and "env-secret" not in str(key)
    (tmp_path / ".env").write_text('# keys\nexport GEMINI_API_KEY="dot-secret"\nOTHER=1 # comment\n')
    key = find_api_key(tmp_path, environ={})
    assert key is not None and key.value == "dot-secret" and key.source.endswith(".env")
    assert "dot-secret" not in repr(key)
    assert read_dotenv(tmp_path / ".env")["OTHER"] == "1"
    assert read_dotenv(tmp_path / "missing") == {}


# Bad arguments: one-line UsageErrors, never a traceback.

BAD_LINES = [
    "",
    "bogus",
    "connect --modality video",
    "connect --modality text",
    "connect --model gemini-live-2.5-flash-preview",
    "connect --model gemini-3.1-flash-live-preview",
    "connect --flavor gemini --transparent",
    "connect --flavor nope",
    "connect --url ws://127.0.0.1:9 --flavor gemini",
    "models extra",
    "connect --compress abc",
    "connect --compress 1000",
    "connect --compress 20000:30000",
    "connect --time-scale -1",
    "connect --time-scale abc",
    "connect --backend nope",
    "connect 'unclosed",
    "connect bad/name",
    "connect --url http://example.com",
    "connect --backend gemini",
    "connect --backend vertex --time-scale 60",
    "connect --frobnicate",
    "connect --resume",
    "connect a b",
    "status nosuch",
    "close nosuch",
    "history nosuch",
    "history --view nope",
    "mic maybe",
    "camera",
    "system",
    "resume nosuch",
    "sessions extra",
    "dashboard nosuch extra",
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_line_arguments_give_one_line_usage_errors(ip: Any, line: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("live", line)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message


BAD_CELLS = [
    ("--role admin", "hi"),
    ("--bogus", "hi"),
    ("a b", "hi"),
    ("", "   \n  "),
    ("--system --role model", "hi"),
    ("bad/name", "hi"),
    ("'unclosed", "hi"),
]


@pytest.mark.parametrize(("line", "body"), BAD_CELLS)
def test_bad_cell_arguments_give_one_line_usage_errors(ip: Any, line: str, body: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("live", line, body)
    assert "\n" not in str(info.value)


# One rule for session names, the metadata bridge's (metadata.SESSION_NAME_PATTERN): a name whose
# handle the notebook could not store is refused up front, in one line that says what is allowed.
REFUSED_NAMES = ["café", "a b", "x/y", "n" * 200, "<img src=x>", "1st", "naïve.v2"]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_names_the_notebook_cannot_store_are_refused_in_one_line(ip: Any, name: str) -> None:
    quoted = shlex.quote(name)  # one argument, spaces and all
    runs = [
        lambda: ip.run_cell_magic("live", quoted, "hi"),
        lambda: ip.run_line_magic("live", f"connect {quoted}"),
        lambda: ip.run_line_magic("live", f"history {quoted}"),
    ]
    if " " not in name:  # `%live system --name NAME TEXT` takes the name up to the first space
        runs.append(lambda: ip.run_line_magic("live", f"system --name {name} Be brief."))
    for run in runs:
        with pytest.raises(UsageError) as info:
            run()
        message = str(info.value)
        assert message.startswith("bad session name") and "\n" not in message, message
        assert "A-Z a-z 0-9 _ . - (ASCII only)" in message and len(message) < 200
    with pytest.raises(UsageError) as info:  # unquoted: still one line, whatever the parser made of it
        ip.run_cell_magic("live", name, "hi")
    assert "\n" not in str(info.value)
    assert magics_of(ip).registry.sessions == {}


def test_usage_error_shows_no_traceback(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = ip.run_cell("%live connect --compress 1000")
    captured = capsys.readouterr()
    assert not result.success
    assert "UsageError" in captured.err and "Traceback" not in captured.err + captured.out
    assert "5,000" in captured.err
    assert "bundled Live API emulator" not in captured.out  # nothing opened, nothing announced


# Sessions against the embedded emulator.


def test_first_use_opens_a_session_on_the_embedded_emulator(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["topic"] = "tides"
    out = ask(ip, capsys, "", "Tell me about {topic}.")
    assert "bundled Live API emulator" in out
    assert re.search(r"\(Vertex AI flavour: transparent resumption, system-instruction updates\) on ws://127\.0\.0\.1:\d+", out)
    assert 'Turn 1. You asked: "Tell me about tides."' in out  # the transcription of the audio reply
    assert re.search(r"\[\d+\.\d s of reply audio\]", out)
    out = ask(ip, capsys, "", "What did I say first?")
    assert "bundled Live API emulator" not in out  # said once
    assert 'Turn 2.' in out and '"Tell me about tides."' in out
    entry = magics_of(ip).registry.sessions["default"]
    assert entry.options.backend == "emulator" and entry.session is not None
    assert entry.session.url.startswith("ws://127.0.0.1:")


def test_incremental_context_roles_and_system(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("live", "connect")
    assert ask(ip, capsys, "--no-reply", "My favourite colour is teal.") == ""
    assert ask(ip, capsys, "--role model", "Noted: teal.") == ""
    assert ask(ip, capsys, "--system", "Answer like a pirate.") == ""
    out = ask(ip, capsys, "", "What did I say first?")
    assert '"My favourite colour is teal."' in out
    frame = ip.run_line_magic("live", "history")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["time", "role", "text"]
    assert list(frame.role[:3]) == ["user", "model", "system"]
    assert frame.role.iloc[-1] == "model"


def test_several_named_sessions_at_once(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "Turn 1." in ask(ip, capsys, "alpha", "I am alpha.")
    assert "Turn 1." in ask(ip, capsys, "beta", "I am beta.")
    out = ask(ip, capsys, "alpha", "What did I say first?")
    assert '"I am alpha."' in out and "beta" not in out
    capsys.readouterr()
    ip.run_line_magic("live", "sessions")
    listing = capsys.readouterr().out
    assert "alpha: active" in listing and "beta: active" in listing
    ip.run_line_magic("live", "close beta")
    assert set(magics_of(ip).registry.sessions) == {"alpha"}


def test_config_traits_set_session_defaults(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", "LiveMagics.compress = '20000:8000'")
    ip.run_line_magic("config", "LiveMagics.system = 'Be brief.'")
    ip.run_line_magic("config", "LiveMagics.default_session = 'configured'")
    try:
        ask(ip, capsys, "", "hello")
        entry = magics_of(ip).registry.sessions["configured"]
        assert entry.session is not None
        assert (entry.session.ledger.trigger, entry.session.ledger.target) == (20_000, 8_000)
        capsys.readouterr()
        ip.run_line_magic("live", "status")
        status = capsys.readouterr().out
        assert "compress 20,000→8,000" in status and "state=active" in status
        out = ask(ip, capsys, "", "What is your system instruction?")
        assert "Be brief." in out
    finally:
        for name, value in (("compress", "''"), ("system", "''"), ("default_session", "'default'")):
            ip.run_line_magic("config", f"LiveMagics.{name} = {value}")


def test_connect_options_and_views(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run_line_magic("live", "connect view --compress 6000:2000 --transparent --time-scale 60")
    out = capsys.readouterr().out
    assert "connected 'view'" in out and "time x60" in out
    for i in range(5):  # about 2,000 tokens each: past the 6,000-token trigger by the fourth
        ask(ip, capsys, "view", f"Message number {i} " + "with plenty of padding words " * 270)
    views = {v: ip.run_line_magic("live", f"history view --view {v}") for v in ("events", "usage", "context")}
    assert {"Connected", "SessionResumptionUpdate"} <= set(views["events"].event)
    assert len(views["usage"]) == 5
    assert "prompt_TEXT" in views["usage"].columns
    context = views["context"]
    assert {"estimated_tokens", "reported_tokens", "trigger_tokens", "target_tokens", "compressed_from"} <= set(
        context.columns
    )
    assert (context.trigger_tokens == 6000).all()
    assert (context.source == "compression").any(), "a 6,000-token trigger must have compressed this context"
    # Reconnecting replaces the session under the same name.
    capsys.readouterr()
    ip.run_line_magic("live", "connect view")
    assert "reconnected 'view'" in capsys.readouterr().out


def test_resume_after_close_uses_the_kept_handle(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ask(ip, capsys, "keep", "The secret word is heron.")
    ip.run_line_magic("live", "close keep")
    capsys.readouterr()
    ip.run_line_magic("live", "resume keep")
    assert "resumed 'keep'" in capsys.readouterr().out
    out = ask(ip, capsys, "keep", "What did I say first?")
    assert '"The secret word is heron."' in out
    # Resume on a live session moves it to a new connection.
    ip.run_line_magic("live", "resume keep")
    session = magics_of(ip).registry.sessions["keep"].session
    assert session is not None and session.reconnects == 1


def test_api_key_selects_gemini_and_is_never_shown(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sk-test-do-not-print")
    options = magics_of(ip)._resolve()
    assert options.backend == "gemini"
    assert "sk-test-do-not-print" not in repr(options)
    with pytest.raises(UsageError, match="only to the emulator"):
        ip.run_line_magic("live", "connect real --time-scale 60")


def test_help_lists_every_subcommand(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run_line_magic("live", "help")
    text = capsys.readouterr().out
    for command in magics_of(ip)._subcommands():
        assert f"%live {command}" in text
    assert text.rstrip("\n") + "\n" == live_magics.HELP


def test_resume_after_reload_reads_the_stored_handle(
    shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As after a kernel restart: new magics, new loop, new emulator process state, same database."""
    offline(tmp_path, monkeypatch)
    shell.run_line_magic("load_ext", "live_nb")
    try:
        ask(shell, capsys, "diary", "Today I saw a kingfisher.")
        shell.run_line_magic("unload_ext", "live_nb")
        assert not _loop.running()
        sidecars = list(tmp_path.glob("*.live_nb.json"))
        assert sidecars, "the metadata bridge keeps handles in a sidecar file without the labextension"
        assert "kingfisher" not in sidecars[0].read_text()
        shell.run_line_magic("load_ext", "live_nb")
        capsys.readouterr()
        shell.run_line_magic("live", "resume diary")
        assert "resumed 'diary'" in capsys.readouterr().out
        out = ask(shell, capsys, "diary", "What did I say first?")
        assert '"Today I saw a kingfisher."' in out
    finally:
        shell.run_line_magic("unload_ext", "live_nb")


def test_transparent_resumption_is_on_where_the_backend_offers_it(ip: Any) -> None:
    magics = magics_of(ip)
    assert magics.transparent is None  # automatic
    ip.run_line_magic("live", "connect auto")
    assert magics.registry.sessions["auto"].options.transparent is True  # the emulator offers it
    ip.run_line_magic("live", "connect plain --no-transparent")
    assert magics.registry.sessions["plain"].options.transparent is False
    ip.run_line_magic("config", "LiveMagics.transparent = False")
    try:
        ip.run_line_magic("live", "connect configured")
        assert magics.registry.sessions["configured"].options.transparent is False
    finally:
        ip.run_line_magic("config", "LiveMagics.transparent = None")


def test_stored_handles_are_listed_and_an_expired_one_is_named_plainly(
    shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a restart, %live sessions shows stored handles; resuming an expired one says so in words."""
    from live_nb.notebook.sidecar import read_records, write_sidecar

    offline(tmp_path, monkeypatch)
    shell.run_line_magic("load_ext", "live_nb")
    try:
        ask(shell, capsys, "diary", "Today I saw a heron.")
        shell.run_line_magic("unload_ext", "live_nb")
        (sidecar,) = tmp_path.glob("*.live_nb.json")
        records = read_records(sidecar)
        old = dict(records["diary"], handle="long-gone-handle", expires="2020-01-01T00:00:00+00:00")
        write_sidecar(sidecar, {**records, "old": old})
        shell.run_line_magic("load_ext", "live_nb")
        capsys.readouterr()
        shell.run_line_magic("live", "sessions")
        listing = capsys.readouterr().out
        assert re.search(r"diary: stored, handle .* expires in", listing), listing
        assert re.search(r"old: stored, handle .*: expired .* ago", listing), listing
        with pytest.raises(UsageError, match=r"expired .* ago \(handles live 2 h on this backend\)"):
            shell.run_line_magic("live", "resume old")
        shell.run_line_magic("live", "resume diary")  # the live one still resumes
        assert '"Today I saw a heron."' in ask(shell, capsys, "diary", "What did I say first?")
    finally:
        shell.run_line_magic("unload_ext", "live_nb")


def test_history_after_close_and_ended_sessions(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ask(ip, capsys, "brief", "One short turn.")
    session = magics_of(ip).registry.sessions["brief"].session
    assert session is not None
    # The session ends under the magics (as after a fatal close): the next cell says what to do.
    _loop.block(_loop.submit(session.close()), 5)
    with pytest.raises(UsageError, match=r"has ended; `%live resume brief`"):
        ip.run_cell_magic("live", "brief", "Anyone there?")
    ip.run_line_magic("live", "close brief")
    frame = ip.run_line_magic("live", "history brief")
    assert list(frame.role) == ["user", "model"]


def test_ctrl_c_in_a_blocking_cell_cancels_fast_and_keeps_the_session(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Terminal IPython: the cell blocks on the future; Ctrl-C cancels the request, not the session."""
    from live_nb.emulator import Emulator

    # 0.1 s between 40 ms audio chunks: a reply streams for several seconds.
    slow = Emulator(host="127.0.0.1", port=0, chunk_delay=0.1)
    _loop.block(_loop.submit(slow.start()), 10)
    try:
        ip.run_line_magic("live", f"connect slowterm --url {slow.url}")
        timer = threading.Timer(1.5, _thread_interrupt_main)
        timer.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic("live", "slowterm", "Tell me a long story about the sea, slowly.")
        assert time.monotonic() - start < 1.5 + 1.0
        out = ask(ip, capsys, "slowterm", "What is two plus two?")
        assert 'You asked: "What is two plus two?"' in out
        assert "story" not in out.split("You asked:")[0]
        session = magics_of(ip).registry.sessions["slowterm"].session
        assert session is not None and session.state == "active" and session.reconnects == 0
    finally:
        ip.run_line_magic("live", "close --all")
        _loop.block(_loop.submit(slow.stop()), 10)
        slow.cleanup()


def _thread_interrupt_main() -> None:
    # A real SIGINT, as Ctrl-C in a terminal sends (it interrupts the blocking wait; a simulated
    # interrupt_main() would only be seen once the wait had ended).
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)


def test_dashboard_and_media_subcommands(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from live_nb.widgets import media

    capsys.readouterr()
    ip.run_line_magic("live", "dashboard studio")  # opens the session on first use
    assert "Dashboard" in capsys.readouterr().out
    session = magics_of(ip).registry.sessions["studio"].session
    ip.run_line_magic("live", "mic on studio")
    streamer = media._lookup(session)
    assert streamer is not None and streamer.audio and not streamer.video
    ip.run_line_magic("live", "camera on studio")
    assert streamer.audio and streamer.video
    ip.run_line_magic("live", "mic off studio")
    assert not streamer.audio and streamer.video
    ip.run_line_magic("live", "camera off studio")
    assert not streamer.video


class RecordingRenderer(Renderer):
    def __init__(self) -> None:
        self.updates: list[str] = []
        self.finished: list[tuple[str, list[str], bytes]] = []

    def update(self, text: str, notes: list[str]) -> None:
        self.updates.append(text)

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        self.finished.append((text, list(notes), audio))


def _content(text: str = "", turn_complete: bool = False, interrupted: bool = False) -> Any:
    from live_nb.protocol.content import Content, Part
    from live_nb.protocol.messages import ServerContent

    turn = Content(role="model", parts=(Part(text=text),)) if text else None
    return ServerContent(model_turn=turn, turn_complete=turn_complete, interrupted=interrupted)


@pytest.mark.parametrize(
    "old_turn_ends",
    [
        # The service interrupts the cancelled reply when the next turn arrives...
        [_content("old words "), _content(interrupted=True), _content(turn_complete=True)],
        # ... or it had already finished it.
        [_content("old words "), _content("more old", turn_complete=True)],
    ],
)
def test_router_keeps_a_cancelled_reply_out_of_the_next_cell(old_turn_ends: list[Any]) -> None:
    import asyncio

    async def scenario() -> RecordingRenderer:
        router = Router()
        router.discard = 1  # a request was cancelled after its turn was sent
        renderer = RecordingRenderer()
        router.current = Turn(renderer, asyncio.get_running_loop())
        for item in [*old_turn_ends, _content("new answer"), _content(turn_complete=True)]:
            router(item)
        assert router.current.done.done()
        return renderer

    renderer = asyncio.run(scenario())
    assert renderer.finished == [("new answer", [], b"")]
    assert all("old" not in text for text in renderer.updates)


def test_a_turn_sent_while_an_async_reply_streams_waits_for_it(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests on one session run in cell order: a --no-reply turn must not barge into a streaming reply."""
    from live_nb.emulator import Emulator

    slow = Emulator(host="127.0.0.1", port=0, chunk_delay=0.03)
    _loop.block(_loop.submit(slow.start()), 10)
    try:
        ip.run_line_magic("live", f"connect queue --url {slow.url}")
        capsys.readouterr()
        ip.run_cell_magic("live", "queue --async", "Please answer in a long sentence.")
        start = time.monotonic()
        ip.run_cell_magic("live", "queue --no-reply", "A note for later.")
        waited = time.monotonic() - start
        out = capsys.readouterr().out
        assert waited > 0.5, "the --no-reply turn should have waited for the streaming reply"
        assert 'You asked: "Please answer in a long sentence."' in out
        assert "interrupted" not in out
        transcript = magics_of(ip).registry.sessions["queue"].session.transcript  # type: ignore[union-attr]
        assert [role for _, role, _ in transcript] == ["user", "model", "user"]
    finally:
        ip.run_line_magic("live", "close --all")
        _loop.block(_loop.submit(slow.stop()), 10)
        slow.cleanup()


# Today's models: audio replies, the catalogue, flavours, initial history.


def test_defaults_are_todays_model_answering_in_audio_with_its_transcription(ip: Any) -> None:
    magics = magics_of(ip)
    assert magics.model == catalogue.DEFAULT_MODEL == "gemini-3.8-live"
    assert (magics.modality, magics.transcription, magics.speak, magics.emulator_flavor) == ("audio", True, False, "vertex")
    options = magics._resolve()
    config = options.generation_config()
    assert options.backend == "emulator" and options.flavor == "vertex" and options.transparent is True
    assert list(config.response_modalities or ()) == ["AUDIO"] and config.output_audio_transcription
    assert config.history_config is None
    ip.run_line_magic("live", "connect defaults")
    entry = magics.registry.sessions["defaults"]
    assert entry.session is not None and "LlmBidiService" in entry.session.url  # dialled on Vertex AI's path
    assert entry.model is not None and entry.model.flavor == "vertex"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("connect t --modality text", r"gemini-3\.8-live answers in AUDIO only.*in the magics: --modality audio"),
        ("connect t --model gemini-live-2.5-flash-preview", r"shut down on 2025-12-09; use gemini-3\.8-live"),
        ("connect t --model gemini-3.1-flash-live-preview", r"not served on Vertex AI.*--flavor gemini"),
        ("connect t --flavor gemini --transparent", r"transparent resumption is a Vertex AI feature"),
        ("connect t --model gemini-live-2.5-flash-native-audio --flavor gemini", r"not served on the Gemini Dev"),
    ],
)
def test_settings_a_model_refuses_are_one_line_usage_errors_saying_what_instead(
    ip: Any, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    capsys.readouterr()
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("live", line)
    message = str(info.value)
    assert "\n" not in message and re.search(says, message), message
    assert magics_of(ip).registry.sessions == {}  # refused before anything was opened
    assert "bundled Live API emulator" not in capsys.readouterr().out


def test_no_transcription_leaves_only_the_audio(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run_line_magic("live", "connect quiet --no-transcription")
    assert "(no transcription)" in capsys.readouterr().out
    config = magics_of(ip).registry.sessions["quiet"].options.generation_config()
    assert not config.output_audio_transcription and list(config.response_modalities or ()) == ["AUDIO"]
    out = ask(ip, capsys, "quiet", "Say something.")
    assert "You asked" not in out and re.search(r"\[\d+\.\d s of reply audio\]", out)


def test_models_lists_the_catalogue(ip: Any) -> None:
    frame = ip.run_line_magic("live", "models")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "status", "backends", "replacement", "note"]
    assert list(frame.id) == [m.id for m in catalogue.CATALOGUE]
    rows = frame.set_index("id")
    assert rows.loc["gemini-3.8-live", "status"] == "current (default)"
    assert rows.loc["gemini-3.8-live", "backends"] == "gemini, vertex"
    assert rows.loc["gemini-3.1-flash-live-preview", "replacement"] == "gemini-3.8-live"
    assert "initial history" in rows.loc["gemini-3.1-flash-live-preview", "note"]
    assert rows.loc["gemini-live-2.5-flash-preview", "status"] == "shut down"


def test_model_option_completes_from_the_catalogue(ip: Any) -> None:
    from IPython.core.completer import provisionalcompleter

    def complete(text: str) -> list[str]:
        with provisionalcompleter():
            found = list(ip.Completer.completions(text, len(text)))
        return [text[: c.start] + c.text for c in found]

    usable = [m.id for m in catalogue.CATALOGUE if m.usable]
    line = "%live connect chat --model "
    assert complete(line) == [line + m for m in usable]
    assert complete(line + "gemini-3.") == [
        line + m for m in ("gemini-3.8-live", "gemini-3.8-live-extended-thinking", "gemini-3.1-flash-live-preview")
    ]
    assert complete("%live connect --model=gemini-live") == ["%live connect --model=gemini-live-2.5-flash-native-audio"]
    assert complete("%live connect x --flavor g") == ["%live connect x --flavor gemini"]
    assert complete("%live mod") == ["%live models"]
    assert "gemini-live-2.5-flash-preview" not in live_completions("%live connect --model ")  # shut down
    assert set(live_magics.SUBCOMMANDS) == set(magics_of(ip)._subcommands())
    # Python completion elsewhere is untouched.
    with provisionalcompleter():
        assert "print" in [c.text for c in ip.Completer.completions("pri", 3)]


def test_unload_removes_the_completer(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(tmp_path, monkeypatch)
    ours = "live_nb.live_completions"
    shell.run_line_magic("load_ext", "live_nb")
    shell.run_line_magic("reload_ext", "live_nb")
    assert [getattr(m, "matcher_identifier", None) for m in shell.Completer.custom_matchers].count(ours) == 1
    shell.run_line_magic("unload_ext", "live_nb")
    assert ours not in [getattr(m, "matcher_identifier", None) for m in shell.Completer.custom_matchers]


def test_developer_api_flavour_changes_the_defaults_and_refuses_system_updates(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    magics = magics_of(ip)
    ip.run_line_magic("config", "LiveMagics.emulator_flavor = 'gemini'")
    try:
        capsys.readouterr()
        ip.run_line_magic("live", "connect dev")
        out = capsys.readouterr().out
        assert "(Gemini Developer API flavour: no transparent resumption or system-instruction updates)" in out
        assert "connected 'dev': emulator (Gemini Developer API flavour) gemini-3.8-live AUDIO" in out
        entry = magics.registry.sessions["dev"]
        assert entry.options.flavor == "gemini" and entry.options.transparent is False
        assert entry.session is not None and "GenerativeService" in entry.session.url
        for attempt in (
            lambda: ip.run_line_magic("live", "system --name dev Be brief."),
            lambda: ip.run_cell_magic("live", "dev --system", "Be brief."),
        ):
            with pytest.raises(UsageError) as info:
                attempt()
            assert "\n" not in str(info.value) and "Vertex AI only" in str(info.value)
        assert 'You asked: "Still here?"' in ask(ip, capsys, "dev", "Still here?")  # the session is unharmed
        # The other flavour, side by side, for one session.
        ip.run_line_magic("live", "connect vx --flavor vertex")
        assert magics.registry.sessions["vx"].options.transparent is True
        ip.run_line_magic("live", "system --name vx Be brief.")
        assert "Be brief." in ask(ip, capsys, "vx", "What is your system instruction?")
    finally:
        ip.run_line_magic("config", "LiveMagics.emulator_flavor = 'vertex'")


def test_initial_history_model_takes_history_then_realtime_text(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """gemini-3.1-flash-live-preview: the same cells work; the wire is what that model accepts."""
    magics = magics_of(ip)
    ip.run_line_magic("live", "connect legacy --flavor gemini --model gemini-3.1-flash-live-preview")
    entry = magics.registry.sessions["legacy"]
    assert entry.model is not None
    history = entry.model.generation_config.history_config
    assert history is not None and history.initial_history_in_client_content is True
    assert ask(ip, capsys, "legacy --no-reply", "I am learning about lighthouses.") == ""
    assert ask(ip, capsys, "legacy --role model", "Lighthouses mark dangerous coasts.") == ""
    out = ask(ip, capsys, "legacy", "What did I say first?")
    assert '"I am learning about lighthouses."' in out
    assert 'You asked: "What is a fresnel lens?"' in ask(ip, capsys, "legacy", "What is a fresnel lens?")
    # The emulator (which enforces the model's rules on the wire) saw initial history, then realtime text.
    emulator = magics.registry._emulators[(1.0, "gemini")]
    (served,) = [s for s in emulator.sessions.values() if s.model == "gemini-3.1-flash-live-preview"]
    kinds = [
        ("content", m.turn_complete, m.turns[0].role) if isinstance(m, ClientContent) else ("realtime", m.text)
        for m in served.consumed
        if isinstance(m, (ClientContent, RealtimeInput))
    ]
    assert kinds == [
        ("content", False, "user"),
        ("content", False, "model"),
        ("realtime", "What did I say first?"),
        ("realtime", "What is a fresnel lens?"),
    ]
    assert emulator.refused == []
    # After the first question the history is closed: a turn without a reply is refused in one line.
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("live", "legacy --no-reply", "One more fact.")
    assert "\n" not in str(info.value) and "only as initial history" in str(info.value)
    assert "answer" in ask(ip, capsys, "legacy", "Still there? Please answer.").lower()


def test_client_errors_reach_the_user_as_one_line_usage_errors(ip: Any) -> None:
    ip.run_line_magic("live", "connect gone")
    session = magics_of(ip).registry.sessions["gone"].session
    assert session is not None
    _loop.block(_loop.submit(session.close()), 5)
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("live", "mic on gone")  # start_media raises InvalidState on a closed session
    assert str(info.value).startswith("InvalidState: ") and "\n" not in str(info.value)
    # A refusal the client makes itself (here LocalProtocolError from the catalogue gate) is one line too.
    ip.run_line_magic("live", "connect legacy2 --flavor gemini --model gemini-3.1-flash-live-preview")
    entry = magics_of(ip).registry.sessions["legacy2"]
    ip.run_cell_magic("live", "legacy2", "First question.")
    entry.history_open = True  # as if the magics had lost track: the client itself still refuses
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("live", "legacy2 --no-reply", "Too late for history.")
    assert str(info.value).startswith("LocalProtocolError: ") and "\n" not in str(info.value)
    assert entry.session is not None and not entry.session.closed  # refused before sending: nothing broke


def test_reply_text_is_plain_and_audio_html_holds_no_model_text() -> None:
    hostile = '<img src=x onerror="alert(1)"> **bold** [link](javascript:alert(1))'
    bundle = plain_text(hostile, ["interrupted"])
    assert set(bundle) == {"text/plain"} and bundle["text/plain"] == hostile + "\n[interrupted]"
    player = audio_player(b"\x01\x00" * 24_000, autoplay=True)
    assert set(player) == {"text/html", "text/plain"}
    html = player["text/html"]
    assert re.fullmatch(r'<audio controls autoplay preload="auto" src="data:audio/wav;base64,[A-Za-z0-9+/=]+"></audio>', html)
    assert player["text/plain"] == "[reply audio: 1.0 s at 24 kHz]"
    assert "autoplay" not in audio_player(b"\x00\x00" * 10)["text/html"]


def test_a_turn_keeps_a_bounded_amount_of_audio_and_lets_it_go() -> None:
    from live_nb.protocol.content import Blob, Content, Part
    from live_nb.protocol.messages import ServerContent, Transcription

    async def scenario() -> tuple[RecordingRenderer, Turn]:
        renderer = RecordingRenderer()
        turn = Turn(renderer, asyncio.get_running_loop(), max_audio_seconds=0.1)  # 4,800 bytes
        chunk = Content("model", (Part(inline_data=Blob(b"\x01\x00" * 960, "audio/pcm;rate=24000")),))
        for _ in range(5):  # 5 x 40 ms = 0.2 s
            turn.feed(ServerContent(model_turn=chunk))
        turn.feed(ServerContent(output_transcription=Transcription("Hello there.")))
        turn.feed(ServerContent(turn_complete=True))
        return renderer, turn

    renderer, turn = asyncio.run(scenario())
    ((text, notes, audio),) = renderer.finished
    assert text == "Hello there." and len(audio) == 4_800
    assert notes == ["the player holds the first 0.1 s of this reply's audio"]
    assert len(turn.audio) == 0  # handed to the renderer, not kept


def test_a_key_picks_the_developer_api_or_vertex_as_google_genai_does(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "sk-test-do-not-print")
    options = magics_of(ip)._resolve()
    assert (options.backend, options.flavor, options.transparent) == ("gemini", "gemini", False)
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    options = magics_of(ip)._resolve()
    assert (options.backend, options.flavor, options.transparent) == ("vertex", "vertex", True)
    assert "sk-test-do-not-print" not in repr(options)
    # Vertex AI with application default credentials needs no key: the switch alone picks it.
    monkeypatch.delenv("GOOGLE_API_KEY")
    assert magics_of(ip)._resolve().backend == "vertex"
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI")
    assert magics_of(ip)._resolve().backend == "emulator"


def test_stored_records_live_as_long_as_the_flavour_keeps_handles(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from live_nb.notebook.metadata import get_bridge
    from live_nb.notebook.records import describe_record
    from live_nb.notebook.records import parse_time as _parse_time

    ask(ip, capsys, "kept", "Remember me.")
    ip.run_line_magic("live", "connect dev --flavor gemini")
    ask(ip, capsys, "dev", "Remember me too.")
    records = get_bridge(ip).records
    lifetimes = {name: (_parse_time(records[name]["expires"]) or 0) - (_parse_time(records[name]["updated"]) or 0)
                 for name in ("kept", "dev")}
    assert lifetimes == {"kept": 24 * 3600.0, "dev": 2 * 3600.0}
    old = dict(records["kept"], updated="2020-01-01T00:00:00Z", expires="2020-01-02T00:00:00Z")
    assert "(handles live 24 h on this backend)" in describe_record(old)


# Tools: notebook functions the model may call (issue 13).

WEATHER_SOURCE = '''
weather_calls = []

def get_weather(city: str) -> dict:
    """The weather in a city now.

    Args:
        city: the city's name, e.g. Paris.
    """
    weather_calls.append(city)
    return {"city": city, "temp_c": 21, "sky": "clear"}

def untyped(city):
    return city

forecast_days = 3
'''


def test_connect_tools_runs_the_notebook_function_once_and_the_reply_quotes_it(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(WEATHER_SOURCE)
    capsys.readouterr()
    ip.run_line_magic("live", "connect w --tools get_weather")
    assert "tools get_weather" in capsys.readouterr().out
    entry = magics_of(ip).registry.sessions["w"]
    assert entry.options.tool_names == ("get_weather",)
    assert entry.model is not None and [t.name for t in entry.model.tools] == ["get_weather"]
    declaration = entry.model.tools[0].declaration()
    assert declaration["parameters"]["properties"]["city"] == {"type": "STRING", "description": "the city's name, e.g. Paris."}
    out = ask(ip, capsys, "w", "What is the weather in Paris? get_weather city=Paris")
    assert ip.user_ns["weather_calls"] == ["Paris"]  # once, with city="Paris"
    assert "→ get_weather(city='Paris') …" in out
    assert re.search(r"← get_weather returned .*\"temp_c\": 21.* in \d+\.\d\d s", out), out
    # The spoken answer after the result quotes what the function returned.
    assert 'get_weather returned {"city": "Paris", "sky": "clear", "temp_c": 21}' in out, out
    events = ip.run_line_magic("live", "history w --view events")
    runs = events[events.event == "ToolRun"]
    assert list(runs.status) == ["running", "returned"]
    assert list(runs.name) == ["get_weather", "get_weather"] and json_city(runs.args.iloc[0]) == "Paris"
    assert runs.seconds.iloc[1] >= 0 and "temp_c" in runs.result.iloc[1]
    tools = ip.run_line_magic("live", "history w --view tools")
    assert list(tools[["name", "status"]].itertuples(index=False, name=None)) == [("get_weather", "returned")]


def json_city(args: str) -> str:
    import json

    return str(json.loads(args)["city"])


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("connect t --tools no_such_function", "no 'no_such_function' in the notebook"),
        ("connect t --tools forecast_days", "'forecast_days' is a int, not a function"),
        ("connect t --tools untyped", "ConfigError: tools.untyped.city="),
        ("connect t --tools get_weather,get_weather", "two tools are called 'get_weather'"),
        ("connect t --tools 'a b'", "is not a Python name"),
        ("connect t --tool-timeout 5", "go with --tools"),
        ("connect t --tools get_weather --tool-timeout 0", "must be positive"),
        (
            "connect t --flavor gemini --model gemini-3.8-live-extended-thinking --thinking low --tools get_weather "
            "--tool-behavior blocking",
            "BLOCKING",
        ),
        ("connect t --flavor gemini --model gemini-3.8-live-extended-thinking --thinking low --tools get_weather "
         "--tool-scheduling silent",
         "scheduling"),
    ],
)
def test_tool_errors_are_one_line_usage_errors(ip: Any, line: str, says: str) -> None:
    ip.run_cell(WEATHER_SOURCE)
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("live", line)
    message = str(info.value)
    assert says in message and "\n" not in message, message
    assert "t" not in magics_of(ip).registry.sessions  # nothing was opened


def test_tool_settings_reach_the_declarations_and_help(ip: Any) -> None:
    ip.run_cell(WEATHER_SOURCE)
    ip.run_line_magic(
        "live", "connect nb --tools get_weather --tool-behavior non_blocking --tool-scheduling silent --tool-timeout 7"
    )
    tool = magics_of(ip).registry.sessions["nb"].options.tools[0]
    assert (tool.behavior, tool.scheduling, tool.timeout) == ("NON_BLOCKING", "SILENT", 7.0)
    assert tool.declaration()["behavior"] == "NON_BLOCKING"
    # A Tool made in the notebook keeps its own settings.
    ip.run_cell("from live_nb.protocol.tools import tool_from_callable\n"
                "blocking_weather = tool_from_callable(get_weather, behavior='BLOCKING')")
    ip.run_line_magic("live", "connect b --tools blocking_weather --tool-timeout 3")
    tool = magics_of(ip).registry.sessions["b"].options.tools[0]
    assert (tool.name, tool.behavior, tool.timeout) == ("get_weather", "BLOCKING", 3.0)
    help_text = live_magics.help_text()
    assert "--tools F,G" in help_text and "--tool-scheduling SILENT|WHEN_IDLE|INTERRUPT" in help_text


def test_tools_option_completes_the_notebooks_functions(ip: Any) -> None:
    from IPython.core.completer import provisionalcompleter

    ip.run_cell(WEATHER_SOURCE)

    def complete(text: str) -> list[str]:
        with provisionalcompleter():
            found = list(ip.Completer.completions(text, len(text)))
        return [text[: c.start] + c.text for c in found]

    assert complete("%live connect w --tools get_w") == ["%live connect w --tools get_weather"]
    assert complete("%live connect w --tools get_weather,unt") == ["%live connect w --tools get_weather,untyped"]
    assert "forecast_days" not in live_completions("%live connect w --tools ", ip.user_ns)
    assert "get_weather" in live_completions("%live connect w --tools ", ip.user_ns)


def test_extended_thinking_needs_a_level_and_its_cell_waits_for_idle(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match=r"needs a thinking level.*--thinking low\|medium\|high"):
        ip.run_line_magic("live", "connect deep --flavor gemini --model gemini-3.8-live-extended-thinking")
    ip.run_line_magic("live", "connect deep --flavor gemini --model gemini-3.8-live-extended-thinking --thinking low")
    out = ask(ip, capsys, "deep", "Why is the sky blue?")
    # The filler turn ended with IN_PROGRESS; the cell kept streaming until IDLE.
    assert "that was a filler (interactionStatus IN_PROGRESS)" in out, out
    assert "interactionStatus IDLE: the answer is complete" in out
    assert out.index("Let me think about that.") < out.index('You asked: "Why is the sky blue?"')
