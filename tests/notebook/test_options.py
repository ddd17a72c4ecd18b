"""notebook/options.py: options resolved from arguments then defaults, checked by the catalogue's rules."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from live_nb.notebook.options import resolve_options
from live_nb.protocol.catalogue import BACKEND_OFFERS


class Defaults:
    model = "gemini-3.8-live"
    backend = "emulator"
    modality = "audio"
    transcription = True
    emulator_flavor = "vertex"
    compress = ""
    transparent: bool | None = None
    time_scale = 1.0
    system = ""
    emulator_url = ""
    project = ""
    location = ""


def test_arguments_win_over_defaults_and_the_flavour_sets_what_is_offered() -> None:
    vertex = resolve_options(Defaults())
    assert (vertex.flavor, vertex.transparent, vertex.in_kernel_emulator, vertex.automatic) == ("vertex", True, True, False)
    gemini = resolve_options(Defaults(), flavor="gemini", time_scale=60.0, compress="20k:8k")
    assert (gemini.flavor, gemini.transparent) == ("gemini", False)
    assert gemini.compression is not None and gemini.compression.trigger_tokens == 20_000
    # The one retention source, scaled like every emulator limit.
    assert gemini.handle_retention == BACKEND_OFFERS["gemini"].handle_retention_seconds / 60.0
    assert vertex.handle_retention == BACKEND_OFFERS["vertex"].handle_retention_seconds


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"flavor": "gemini", "transparent": True}, "transparent"),
        ({"modality": "text"}, "--modality audio"),
        ({"url": "http://x"}, "ws://"),
        ({"time_scale": 0.0}, "positive"),
    ],
)
def test_refusals_are_one_line_usage_errors(arguments: dict[str, object], said: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_options(Defaults(), **arguments)  # type: ignore[arg-type]
    assert said in str(info.value) and "\n" not in str(info.value)
