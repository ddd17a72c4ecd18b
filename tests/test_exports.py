"""The public API: everything in live_nb.__all__ resolves, and the names the seed SDKs use are there."""

from __future__ import annotations

import subprocess
import sys

import live_nb
from live_nb import exceptions


def test_every_exported_name_resolves() -> None:
    missing = [name for name in live_nb.__all__ if not hasattr(live_nb, name)]
    assert not missing
    assert len(set(live_nb.__all__)) == len(live_nb.__all__)


def test_all_exceptions_are_exported_and_derive_from_live_error() -> None:
    for name in exceptions.__all__:
        assert name in live_nb.__all__
        assert issubclass(getattr(exceptions, name), exceptions.LiveError)


def test_seed_sdk_names() -> None:
    for name in (
        "LiveModel",
        "LiveSession",
        "LiveGenerationConfig",
        "ContextWindowCompressionConfig",
        "SlidingWindow",
        "SessionResumptionConfig",
        "GoingAwayNotice",
        "SessionResumptionUpdate",
        "load_ipython_extension",
        "unload_ipython_extension",
    ):
        assert name in live_nb.__all__, name
    assert live_nb.GoingAwayNotice is live_nb.GoAway


def test_config_for_todays_models_and_the_catalogue_are_exported() -> None:
    for name in ("ThinkingConfig", "SpeechConfig", "AudioTranscriptionConfig", "ProactivityConfig",
                 "HistoryConfig", "CATALOGUE", "DEFAULT_MODEL", "ModelInfo"):
        assert name in live_nb.__all__, name
    assert live_nb.DEFAULT_MODEL == "gemini-3.8-live"


def test_plain_import_stays_light() -> None:
    code = "import sys, live_nb; print(sorted(m for m in ('IPython', 'ipywidgets', 'pandas', 'websockets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
