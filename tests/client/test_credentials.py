"""live_nb/client/credentials.py: keys from the environment, then a real ``.env`` file; never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from live_nb.client.credentials import KEY_NAMES, ApiKey, env_or_dotenv, find_api_key, read_dotenv

FAKE = "test-credential-value-0123456789"  # not shaped like a real key


def write_env(directory: Path, text: str) -> Path:
    path = directory / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_dotenv_lines_quotes_exports_and_comments(tmp_path: Path) -> None:
    path = write_env(
        tmp_path,
        "# a comment\n"
        "\n"
        "PLAIN=one\n"
        "export EXPORTED = two\n"
        "DOUBLE=\"three # not a comment\"\n"
        "SINGLE='four'\n"
        "TRAILING=five # a comment\n"
        "no equals sign here\n"
        "=nameless\n"
        "EMPTY=\n",
    )
    assert read_dotenv(path) == {
        "PLAIN": "one",
        "EXPORTED": "two",
        "DOUBLE": "three # not a comment",
        "SINGLE": "four",
        "TRAILING": "five",
        "EMPTY": "",
    }


def test_missing_or_unreadable_dotenv_is_empty(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}
    (tmp_path / "bad.env").write_bytes(b"KEY=\xff\xfe not utf-8")
    assert read_dotenv(tmp_path / "bad.env") == {}
    (tmp_path / "dir.env").mkdir()
    assert read_dotenv(tmp_path / "dir.env") == {}


def test_the_environment_wins_and_google_api_key_before_gemini_api_key(tmp_path: Path) -> None:
    write_env(tmp_path, f"GEMINI_API_KEY=from-file-{FAKE}\n")
    env = {"GEMINI_API_KEY": f"gemini-{FAKE}", "GOOGLE_API_KEY": f"google-{FAKE}"}
    key = find_api_key(tmp_path, env)
    assert key is not None and (key.name, key.source, key.value) == ("GOOGLE_API_KEY", "environment", f"google-{FAKE}")
    assert KEY_NAMES == ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    key = find_api_key(tmp_path, {"GEMINI_API_KEY": f"gemini-{FAKE}"})
    assert key is not None and (key.name, key.source) == ("GEMINI_API_KEY", "environment")


def test_a_dotenv_key_is_found_when_the_environment_has_none(tmp_path: Path) -> None:
    path = write_env(tmp_path, f"OTHER=x\nGEMINI_API_KEY='{FAKE}'\n")
    key = find_api_key(tmp_path, {"GOOGLE_API_KEY": ""})  # an empty variable is no key
    assert key is not None
    assert (key.value, key.name, key.source) == (FAKE, "GEMINI_API_KEY", str(path))
    assert find_api_key(tmp_path / "nowhere", {}) is None
    write_env(tmp_path, "GEMINI_API_KEY=\n")
    assert find_api_key(tmp_path, {}) is None


def test_the_key_never_shows_in_repr_str_format_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_env(tmp_path, f"GOOGLE_API_KEY={FAKE}\n")
    key = find_api_key(tmp_path, {})
    assert isinstance(key, ApiKey) and key.value == FAKE
    shown = [repr(key), str(key), f"{key}", f"{key!r}", format(key)]
    for text in shown:
        assert FAKE not in text
    assert str(key) == f"GOOGLE_API_KEY from {tmp_path / '.env'}"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("live_nb.test").info("using %s (%r)", key, key)
    assert caplog.records and FAKE not in caplog.text


def test_a_dotenv_key_is_not_exported_into_the_environment(tmp_path: Path) -> None:
    write_env(tmp_path, f"GEMINI_API_KEY={FAKE}\n")
    before = dict(os.environ)
    assert find_api_key(tmp_path, {}) is not None
    assert dict(os.environ) == before


def test_env_or_dotenv_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = read_dotenv(write_env(tmp_path, "LIVE_NB_TEST_SETTING=from-file\n"))
    monkeypatch.delenv("LIVE_NB_TEST_SETTING", raising=False)
    assert env_or_dotenv("LIVE_NB_TEST_SETTING", values) == "from-file"
    monkeypatch.setenv("LIVE_NB_TEST_SETTING", "from-env")
    assert env_or_dotenv("LIVE_NB_TEST_SETTING", values) == "from-env"
    monkeypatch.delenv("LIVE_NB_TEST_SETTING")
    assert env_or_dotenv("LIVE_NB_TEST_SETTING", {}) is None
