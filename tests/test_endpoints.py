"""Endpoints: URLs, auth headers and model names per backend; keys never in a URL, repr or error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from live_nb.client.credentials import read_dotenv
from live_nb.client.endpoints import EndpointResolver, vertex_host, vertex_model_name
from live_nb.exceptions import ConfigError, CredentialsError

SECRET = "AIzaSy-very-secret-key-123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVE_NB_EMULATOR_URL", "GOOGLE_CLOUD_PROJECT",
                 "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_emulator_url_gets_the_gemini_path_and_models_prefix() -> None:
    r = EndpointResolver("emulator", "gemini-live-2.5-flash-preview", url="ws://127.0.0.1:9")
    assert r.url == "ws://127.0.0.1:9/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    assert r.model == "models/gemini-live-2.5-flash-preview"
    assert r.resolve().headers == {"x-goog-api-key": "live-nb-emulator"}


def test_emulator_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVE_NB_EMULATOR_URL", "ws://127.0.0.1:9/custom")
    assert EndpointResolver("emulator", "m").url == "ws://127.0.0.1:9/custom"


def test_emulator_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LIVE_NB_EMULATOR_URL"):
        EndpointResolver("emulator", "m")


@pytest.mark.parametrize("url", ["http://x", "127.0.0.1:9", "ws://h/p?key=abc"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        EndpointResolver("emulator", "m", url=url)
    assert "abc" not in str(info.value)


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="backend"):
        EndpointResolver("openai", "m", url="ws://h")


def test_gemini_key_goes_in_a_header_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    r = EndpointResolver("gemini", "models/gemini-live-2.5-flash-preview")
    endpoint = r.resolve()
    assert endpoint.url == (
        "wss://generativelanguage.googleapis.com/ws/"
        "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    assert endpoint.headers == {"x-goog-api-key": SECRET}
    assert endpoint.model == "models/gemini-live-2.5-flash-preview"
    for text in (endpoint.url, repr(endpoint), str(endpoint), repr(r)):
        assert SECRET not in text


def test_gemini_key_from_google_api_key_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k1")
    assert EndpointResolver("gemini", "m").resolve().headers["x-goog-api-key"] == "k1"
    monkeypatch.delenv("GOOGLE_API_KEY")
    (tmp_path / ".env").write_text('# comment\nexport GEMINI_API_KEY="k2"\n')
    assert read_dotenv() == {"GEMINI_API_KEY": "k2"}
    assert EndpointResolver("gemini", "m").resolve().headers["x-goog-api-key"] == "k2"
    import os

    assert "GEMINI_API_KEY" not in os.environ  # never exported


def test_gemini_without_key_is_a_credentials_error() -> None:
    with pytest.raises(CredentialsError, match="GEMINI_API_KEY"):
        EndpointResolver("gemini", "m")


def test_ephemeral_token_uses_constrained_endpoint_and_token_auth() -> None:
    token = "auth_tokens/abc123secret"
    endpoint = EndpointResolver("gemini", "m", api_key=token).resolve()
    assert endpoint.url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    assert endpoint.headers["Authorization"] == f"Token {token}"
    assert token not in endpoint.url and token not in repr(endpoint)


def test_gemini_base_url_override_and_version() -> None:
    r = EndpointResolver("gemini", "m", url="wss://127.0.0.1:8/", api_key="k", api_version="v1")
    assert r.url == "wss://127.0.0.1:8/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"


@pytest.mark.parametrize(
    ("location", "host"),
    [("global", "aiplatform.googleapis.com"), ("us", "aiplatform.us.rep.googleapis.com"),
     ("eu", "aiplatform.eu.rep.googleapis.com"), ("europe-west4", "europe-west4-aiplatform.googleapis.com")],
)
def test_vertex_hosts(location: str, host: str) -> None:
    assert vertex_host(location) == host


def test_vertex_model_names() -> None:
    assert vertex_model_name("m", "p", "l") == "projects/p/locations/l/publishers/google/models/m"
    assert vertex_model_name("m", None, None) == "publishers/google/models/m"
    assert vertex_model_name("publishers/google/models/m", "p", "l") == "publishers/google/models/m"


def test_vertex_express_key_and_gateway_url() -> None:
    r = EndpointResolver("vertex", "m", api_key=SECRET)
    assert r.url == "wss://aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    assert r.model == "publishers/google/models/m"
    assert SECRET not in repr(r.resolve())
    gw = EndpointResolver("vertex", "m", url="wss://127.0.0.1:8/vertex", api_key="k", project="p", location="us")
    assert gw.url == "wss://127.0.0.1:8/vertex"
    assert gw.model == "projects/p/locations/us/publishers/google/models/m"


def test_vertex_without_google_auth_is_a_clear_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if the extra were not installed
    with pytest.raises(CredentialsError, match=r"live_nb\[vertex\]"):
        EndpointResolver("vertex", "m", project="p")


def test_vertex_without_adc_is_a_clear_credentials_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("google.auth")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")
    with pytest.raises(CredentialsError, match="application default credentials"):
        EndpointResolver("vertex", "m", project="p", location="us-central1")
