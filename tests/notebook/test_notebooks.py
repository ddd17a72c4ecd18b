"""Every notebook in notebooks/ runs top to bottom under nbclient, and its outputs say the right things.

Table-driven: ``NOTEBOOKS`` maps each notebook's file name to the checks of its outputs. A check
names a cell by a piece of its source and gives regular expressions its text output must match
(``present``) or must not match (``absent``). Text output is every stream, plus the
``text/markdown`` / ``text/plain`` / ``text/html`` of displays and results, joined. To add a
notebook, add one entry. A notebook without an entry fails, so none is only checked for "no error".

Every notebook also must: produce no error output, produce output in every cell listed, run
against the bundled emulator (no key in the environment, a fresh emulator database), and run in a
temporary working directory so nothing is written beside the notebooks. They run on today's models:
no notebook names a shut-down model or asks for TEXT replies (``test_notebooks_use_todays_models``),
and a ``%%live`` cell marked ``player=True`` must show the reply audio as a player.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from live_nb.protocol import catalogue

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Expect:
    """What one cell's output must say. ``cell``: a substring of the cell's source (first match)."""

    cell: str
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    image: bool = False
    player: bool = False


@dataclass(frozen=True)
class NotebookCheck:
    expects: tuple[Expect, ...]
    timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)


NOTEBOOKS: dict[str, NotebookCheck] = {
    "quickstart.ipynb": NotebookCheck(
        (
            Expect(
                "Hello! What makes the tides",
                present=(
                    r"bundled Live API emulator",
                    r"Vertex AI flavour: transparent resumption, system-instruction updates",
                    r'Turn 1\. You asked: "Hello! What makes the tides',
                ),
                player=True,
            ),
            Expect(
                "What did I say first?",
                present=(r"Turn 2\.", r'first thing you said .* was "Hello! What makes the tides'),
            ),
            Expect("harbour of {city}", present=(r'You asked: "What is the harbour of Lisbon',)),
            Expect("%live status", present=(r"status 'default': emulator", r"state=active", r"handle=\S")),
            Expect("%live history", present=(r"\buser\b", r"\bmodel\b")),
            Expect("%live models", present=(r"gemini-3\.8-live", r"current \(default\)", r"shut down")),
            Expect(
                "connect old --model {retired}",
                present=(
                    r"UsageError - ConfigError: .*shut down on 2025-12-09; use gemini-3\.8-live",
                    r"UsageError - ConfigError: .*answers in AUDIO only.*--modality audio",
                ),
            ),
            Expect("s = %live session", present=(r"^active \| turns in the transcript: 7$",)),
            Expect("What do you remember?", present=(r"Turn 4\.", r"I hold 8 turns")),
            Expect("%live close", present=(r"closed 'default'",)),
        )
    ),
    "incremental_context.ipynb": NotebookCheck(
        (
            Expect("%live connect tutor", present=(r"connected 'tutor'",)),
            Expect(
                "%%live tutor\nWhat did I say first?",
                present=(r"Turn 1\.", r'was "I am learning about lighthouses\."', r"I hold 4 turns"),
            ),
            Expect("%live history tutor", present=(r"Tower of Hercules", r"\bmodel\b")),
            Expect(
                "What is your system instruction?",
                present=(r'My system instruction is "Answer in one short sentence, like a lighthouse keeper\."',),
            ),
            Expect(
                "What is your system instruction now?",
                present=(r"My system instruction is \"Answer like a ship's captain\.\"",),
                absent=(r"lighthouse keeper",),
            ),
            Expect('history[["role", "text"]]', present=(r"\bsystem\b", r"Answer like a ship's captain")),
            Expect(
                "system --name plain",
                present=(
                    r"connected 'plain': emulator \(Gemini Developer API flavour\)",
                    r"UsageError - updating the system instruction mid-session is Vertex AI only",
                ),
            ),
            Expect(
                "%%live plain\nWhat is your system instruction?",
                present=(r'My system instruction is "Answer in one short sentence\."',),
            ),
            Expect("connect legacy --flavor gemini", present=(r"connected 'legacy'.*gemini-3\.1-flash-live-preview",)),
            Expect(
                "%%live legacy\nWhat did I say first?",
                present=(r'was "I am learning about lighthouses\."',),
                player=True,
            ),
            Expect("One more fact about lighthouses", present=(r"UsageError - .*only as initial history",)),
        )
    ),
    "compression.ipynb": NotebookCheck(
        (
            Expect("--compress 1000:500", present=(r"UsageError - .*trigger_tokens=1000 .* 5,000 to 128,000",)),
            Expect("connect squeeze --compress 6000:3000", present=(r"compress 6,000→3,000",)),
            Expect("for n in range(1, 6)", present=(r"Compression ran 1 time",)),
            Expect(
                "%%live squeeze\nWhat did I say first?",
                present=(r"compressed away", r"Compression ran \d+ time"),
                absent=(r'was "Remember this first',),
            ),
            Expect('context[context.source == "compression"]', present=(r"reported|estimate",)),
            Expect("import matplotlib.pyplot", image=True),
            Expect("usage = %live history squeeze --view usage", present=(r"prompt_tokens", r"prompt_TEXT")),
        )
    ),
    "goaway_resumption.ipynb": NotebookCheck(
        (
            Expect("%live connect voyage --time-scale 60", present=(r"connected 'voyage'.*time x60",)),
            Expect("while time.time() - start < 25", present=(r"done computing",)),
            Expect("%live status voyage", present=(r"state=active", r"reconnects=[2-9]")),
            Expect('events.event.isin', present=(r"GoAway", r"Reconnecting", r"Resumed", r"state_restored=True")),
            Expect(
                "%%live voyage\nWhat did I say first?",
                present=(r'was "Remember this: we sail at dawn from Porto\."',),
            ),
            Expect("%live resume voyage", present=(r"resumed 'voyage'",)),
            Expect("%live close voyage", present=(r"closed 'voyage'",)),
            Expect(
                "%live connect relay --transparent",
                present=(r"last consumed index: \d+ \| waiting for replay: 0",),
            ),
        ),
        timeout=180.0,
    ),
    "mic_and_camera.ipynb": NotebookCheck(
        (
            Expect("%live connect voice", present=(r"connected 'voice': emulator \(Vertex AI flavour\).*AUDIO",)),
            Expect("streamer = start_media", present=(r"MediaStreamer",)),
            Expect('print("capture:", streamer.capture_state, "| streaming', present=(r"capture: idle",)),
            Expect(
                "path.write_bytes",
                present=(r"'What is the weather like in Paris\?': [12]\.\d s of speech \+ 2 s of quiet = [\d,]+ bytes",),
            ),
            Expect(
                "streamer.feed_recorded(pcm)",
                present=(
                    r"chunks pushed: (\d+), received: \1, gaps: 0",
                    r"[34]\.\d s = \d+ tokens",
                    r"signals: \[\]",  # Vertex AI's rules (the emulator's default): its own VAD ends the turn
                    r"reply: [1-9]\d* chunks, [1-9][\d.]* s of 24 kHz audio",
                ),
            ),
            Expect(
                "s.transcript[-2:]",
                present=(
                    r"user \(heard\): \w",  # the inputTranscription, offline recognition's words
                    r'model: Turn 1\. You spoke to me \[[12]\.\d s of speech\]\. Offline recognition heard: "\w',
                    r"question words heard: \[(?:'\w+', )+'\w+'\]",  # 2 or 3 of weather, like, paris
                ),
            ),
            Expect(
                "speech.transcribe(reply",
                # The reply is speech: its own audio, recognised, shares words with its transcription.
                present=(r"spoken answer: [1-9]\d*\.\d s of 24 kHz speech", r"words shared with its transcription: ([2-9]|\d\d+):"),
                player=True,
            ),
            Expect("--view usage", present=(r"prompt_AUDIO",)),
            Expect("VoiceActivityDetector(", present=(r"t = 0\.3 s: speech_start", r"t = 2\.2 s: speech_end")),
            Expect("raise_for_error()", present=(r"no error: ''",)),
            Expect("stop_media(s)", present=(r"closed 'voice'", r"audio: False \| video: False")),
        )
    ),
    "tools.ipynb": NotebookCheck(
        (
            Expect("%live connect w --tools get_weather", present=(r"connected 'w'.*tools get_weather",)),
            Expect(
                "%%live w\nWhat is the weather in Paris?",
                present=(
                    r"^→ get_weather\(city='Paris'\) … \[NON_BLOCKING\]$",
                    r'^← get_weather returned \{"city": "Paris", "temp_c": 21, "sky": "clear"\} in \d+\.\d\d s$',
                    r"Let me check that for you\.",
                    r'The tool answered: get_weather returned \{"city": "Paris", "sky": "clear", "temp_c": 21\}',
                ),
                player=True,
            ),
            Expect('print("calls:", weather_calls)', present=(r"^calls: \['Paris'\]$",)),
            Expect('events[events.event == "ToolRun"]', present=(r"running", r"returned", r"temp_c")),
            Expect(
                "%%live waits",
                present=(r"\[BLOCKING\]", r"← slow_lookup returned .* in 2\.\d\d s$", r"The tool answered"),
                absent=(r"Let me check that for you",),
            ),
            Expect(
                "%%live talks",
                present=(r"\(WHEN_IDLE: answered after the current turn\)", r"Let me check that for you\.",
                         r"The tool answered: slow_lookup returned"),
            ),
            Expect(
                "%%live quiet",
                present=(r"\(SILENT: taken in without a new turn\)", r"Let me check that for you\."),
                absent=(r"The tool answered",),
            ),
            Expect(
                'for name in ("waits", "talks", "quiet")',
                present=(r"waits: BLOCKING .* returned in 2\.\d s", r"talks: NON_BLOCKING +scheduling=WHEN_IDLE",
                         r"quiet: NON_BLOCKING +scheduling=SILENT"),
            ),
            Expect(
                "auto_tools=False",
                present=(r"the model asks for get_weather\(\{'city': 'Lisbon'\}\), id \S+",
                         r'the model said: .*get_weather returned \{"city": "Lisbon"'),
            ),
            Expect("%live connect deep", present=(r"connected 'deep'.*extended-thinking.*thinking low",)),
            Expect(
                "%%live deep\nWhy is the sea salty?",
                present=(r"that was a filler \(interactionStatus IN_PROGRESS\)", r"interactionStatus IDLE",
                         r"Let me think about that\.\s*\n.*You asked: \"Why is the sea salty\?\""),
            ),
            Expect(
                "%%live deep\nWhat is the weather in Rome?",
                present=(r"→ get_weather\(city='Rome'\)", r"interactionStatus IDLE",
                         r'The tool answered: get_weather returned \{"city": "Rome"'),
            ),
            Expect("connect strict", present=(r"UsageError - ConfigError: .*asynchronously only",)),
        ),
        timeout=120.0,
    ),
    "dashboard.ipynb": NotebookCheck(
        (
            Expect("dash = Dashboard(", present=(r"Dashboard\(state='active'\)",)),
            Expect(
                "await asyncio.sleep(14)",
                present=(
                    r"compressions so far: [1-9]",
                    r"[\d,]+ -> [\d,]+ tokens \(seen in the (reported|estimate) numbers\)",
                ),
            ),
            Expect(
                "await until(lambda: session.reconnects >= 1)",
                present=(
                    r"reconnects: [1-9]; state: active",
                    r"GoAway: GoAway\(time_left=10\.0\)",
                    r"Resumed: Resumed\(state_restored=True, replayed=\d+, possibly_lost=0\)",
                ),
            ),
            Expect("ContextChart(session, title=", present=(r"ContextChart\(points=[1-9]\d*",)),
            Expect("ticks = await _loop.wait(feeder)", present=(r"[2-9] compressions, [1-9] reconnects",), image=True),
            Expect("svg = dash.snapshot()", present=(r"static picture: [\d,]+ characters of SVG",)),
            Expect("await _loop.wait(_loop.submit(stop()))", present=(r"closed: closed",)),
        ),
        timeout=120.0,
    ),
}


def notebook_names() -> list[str]:
    return sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))


def cell_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result", "update_display_data"):
            data = output.get("data", {})
            for mime in ("text/markdown", "text/plain", "text/html"):
                if mime in data and not (mime == "text/html" and "<audio" in str(data[mime])):
                    parts.append(str(data[mime]))  # a player's HTML is base64 audio: its text/plain says enough
    return "\n".join(parts)


def test_every_notebook_has_checks() -> None:
    missing = [name for name in notebook_names() if name not in NOTEBOOKS]
    assert not missing, f"add an entry to NOTEBOOKS in tests/notebook/test_notebooks.py for: {missing}"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_and_says_the_right_things(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = NOTEBOOK_DIR / name
    if not path.exists():
        pytest.fail(f"{name} is in NOTEBOOKS but not in notebooks/")
    check = NOTEBOOKS[name]
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVE_NB_BACKEND", "LIVE_NB_EMULATOR_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LIVE_NB_EMULATOR_DB", str(tmp_path / "emulator.sqlite3"))
    for key, value in check.env.items():
        monkeypatch.setenv(key, value)
    original = nbformat.read(path, as_version=4)
    nbformat.validate(original)
    assert all(
        not c.get("outputs") for c in original.cells if c.cell_type == "code"
    ) or all(o.output_type != "error" for c in original.cells for o in c.get("outputs", [])), (
        "saved notebooks carry no error outputs"
    )
    beside_before = set(NOTEBOOK_DIR.glob("*.live_nb.json"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=int(check.timeout), kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [(c.source[:60], o.get("ename"), o.get("evalue")) for c in nb.cells for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert errors == []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for expect in check.expects:
        cell = next((c for c in code_cells if expect.cell in c.source), None)
        assert cell is not None, f"{name}: no cell contains {expect.cell!r}"
        text = cell_text(cell)
        for pattern in expect.present:
            assert re.search(pattern, text, re.M | re.S), f"{name}: cell {expect.cell!r} lacks /{pattern}/:\n{text}"
        for pattern in expect.absent:
            assert not re.search(pattern, text, re.M | re.S), f"{name}: cell {expect.cell!r} has /{pattern}/:\n{text}"
        if expect.image:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"{name}: {expect.cell!r} drew nothing"
        if expect.player:
            assert any("<audio" in str(o.get("data", {}).get("text/html", "")) for o in cell.outputs), (
                f"{name}: {expect.cell!r} shows no reply audio player"
            )
    # Nothing was written beside the notebooks (the kernel ran in tmp_path).
    assert set(NOTEBOOK_DIR.glob("*.live_nb.json")) <= beside_before


SHUT_DOWN = [m.id for m in catalogue.CATALOGUE if not m.usable]


@pytest.mark.parametrize("name", notebook_names())
def test_notebooks_use_todays_models(name: str) -> None:
    """No notebook asks for TEXT replies or names a shut-down model, except to show it refused."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    for cell in nb.cells:
        source = cell.source
        assert '"TEXT"' not in source and "'TEXT'" not in source, f"{name}: asks for TEXT replies:\n{source}"
        assert "--modality text" not in source or "except" in source, f"{name}: asks for text replies:\n{source}"
        for model in SHUT_DOWN:
            if model in source:
                assert cell.cell_type == "markdown" or "except" in source, f"{name}: uses {model}:\n{source}"
