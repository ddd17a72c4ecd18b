"""Endpoints: URLs, auth headers and model names per backend; keys never in a URL, repr or error."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.datastructures import Headers

from live_nb.client.credentials import read_dotenv
from live_nb.client.endpoints import AuthHeaders, Endpoint, EndpointResolver, vertex_host, vertex_model_name
from live_nb.exceptions import ConfigError, CredentialsError

SECRET = "fake-api-key-very-secret-123"
GEMINI_LIVE = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
VERTEX_LIVE = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVE_NB_EMULATOR_URL", "GOOGLE_CLOUD_PROJECT",
                 "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_VERTEX_BASE_URL", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI",
                 "GOOGLE_GENAI_USE_ENTERPRISE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_emulator_bare_url_stays_bare_and_a_service_path_picks_the_flavour() -> None:
    from live_nb.protocol.catalogue import wire_flavor

    r = EndpointResolver("emulator", "gemini-3.8-live", url="ws://127.0.0.1:9")
    assert r.url == "ws://127.0.0.1:9"  # the emulator serves its own flavour (mode) on the bare URL
    assert wire_flavor("emulator", r.url) is None
    assert r.model == "models/gemini-3.8-live"
    assert r.resolve().headers == {"x-goog-api-key": "live-nb-emulator"}
    gemini = "ws://127.0.0.1:9/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    assert wire_flavor("emulator", EndpointResolver("emulator", "m", url=gemini).url) == "gemini"
    vertex = "ws://127.0.0.1:9/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    assert wire_flavor("emulator", EndpointResolver("emulator", "m", url=vertex).url) == "vertex"
    assert wire_flavor("emulator", "ws://127.0.0.1:9/vertex-gateway") == "vertex"


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


# Auth headers: websockets sends the values, nothing prints them.


def test_auth_headers_hide_their_values_but_websockets_sends_them() -> None:
    headers = AuthHeaders([("x-goog-api-key", SECRET), ("Authorization", "Bearer fake-oauth-token-value")])
    assert repr(headers) == str(headers) == "{'x-goog-api-key': '<redacted>', 'Authorization': '<redacted>'}"
    assert headers == {"x-goog-api-key": SECRET, "Authorization": "Bearer fake-oauth-token-value"}
    sent = Headers()
    sent.update(headers)  # what websockets' connect(additional_headers=...) does with a Mapping
    assert sent["x-goog-api-key"] == SECRET and sent["Authorization"] == "Bearer fake-oauth-token-value"
    endpoint = Endpoint("gemini", "wss://h/ws", "models/m", headers)
    assert SECRET not in repr(endpoint) and "fake-oauth-token-value" not in repr(endpoint) and "<redacted>" in repr(endpoint)
    assert headers.redact(f"oops {SECRET} and fake-oauth-token-value") == "oops <redacted> and <redacted>"


# Base URLs from the environment, as google-genai honours them.


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://127.0.0.1:8443", "wss://127.0.0.1:8443" + GEMINI_LIVE),
        ("https://127.0.0.1:8443/", "wss://127.0.0.1:8443/" + GEMINI_LIVE),  # the SDK's //ws/...
        ("http://127.0.0.1:8080/prefix", "wss://127.0.0.1:8080/prefix" + GEMINI_LIVE),
        ("ws://127.0.0.1:8080", "wss://127.0.0.1:8080" + GEMINI_LIVE),
    ],
)
def test_gemini_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, base_url: str, url: str) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url)
    assert EndpointResolver("gemini", "m").url == url
    assert sdk_dialled_uri(monkeypatch, vertexai=False) == url


def test_gemini_base_url_from_dotenv_and_explicit_url_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"GEMINI_API_KEY={SECRET}\nGOOGLE_GEMINI_BASE_URL=https://proxy.example:1\n")
    assert EndpointResolver("gemini", "m").url == "wss://proxy.example:1" + GEMINI_LIVE
    assert EndpointResolver("gemini", "m", url="wss://127.0.0.1:2").url == "wss://127.0.0.1:2" + GEMINI_LIVE
    assert EndpointResolver("emulator", "m", url="ws://127.0.0.1:3").url == "ws://127.0.0.1:3"


@pytest.mark.parametrize("base_url", ["127.0.0.1:8443", "https://h/?key=abc", "https://user:abc@h", "https://[::1"])
def test_bad_base_url_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url)
    with pytest.raises(ConfigError, match="GOOGLE_GEMINI_BASE_URL") as info:
        EndpointResolver("gemini", "m")
    assert "abc" not in str(info.value)


def test_vertex_express_from_environment_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "https://127.0.0.1:8443")
    r = EndpointResolver("vertex", "m")
    assert r.url == "wss://127.0.0.1:8443" + VERTEX_LIVE
    assert r.model == "publishers/google/models/m"
    assert r.resolve().headers == {"x-goog-api-key": SECRET}
    assert sdk_dialled_uri(monkeypatch, vertexai=True) == r.url


def test_vertex_gateway_base_url_is_verbatim_with_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EndpointResolver, "_load_adc", _no_adc)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "wss://127.0.0.1:8443/vertex-proxy")
    r = EndpointResolver("vertex", "gemini-x")
    assert (r.url, r.model, dict(r.resolve().headers)) == ("wss://127.0.0.1:8443/vertex-proxy", "gemini-x", {})
    assert sdk_dialled_uri(monkeypatch, vertexai=True) == r.url
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "https://127.0.0.1:8443/vertex-proxy")
    with pytest.raises(ConfigError, match="GOOGLE_VERTEX_BASE_URL"):
        EndpointResolver("vertex", "m")  # dialled verbatim, so it must be a WebSocket URL


def test_vertex_project_with_base_url_sends_the_bearer_token_to_the_live_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EndpointResolver, "_load_adc", lambda self: FakeCredentials())
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "https://127.0.0.1:8443/")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)  # a project beats a key from the environment, as in the SDK
    r = EndpointResolver("vertex", "m")
    assert r.url == "wss://127.0.0.1:8443/" + VERTEX_LIVE
    assert r.model == "projects/p/locations/us-central1/publishers/google/models/m"
    assert r.resolve().headers == {"Authorization": "Bearer fake-oauth-token"}


def test_vertex_explicit_key_beats_a_project_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    r = EndpointResolver("vertex", "m", api_key=SECRET)
    assert r.url == "wss://aiplatform.googleapis.com" + VERTEX_LIVE  # express mode
    assert r.model == "publishers/google/models/m"


class FakeCredentials:
    """Stands in for google-auth credentials: already valid, no network."""

    valid = True
    token = "fake-oauth-token"
    quota_project_id = None


def _no_adc(self: EndpointResolver) -> Any:
    raise AssertionError("gateway mode looks up no credentials")


def sdk_dialled_uri(monkeypatch: pytest.MonkeyPatch, **client_args: Any) -> str:
    """The URI google-genai 3.4.0 dials for the current environment (its websocket connect is stubbed)."""
    pytest.importorskip("google.genai")
    from google import genai
    from google.genai import live
    from google.genai import types as genai_types

    dialled: list[str] = []

    class Dialled(Exception):
        pass

    def stub(uri: str, **kwargs: Any) -> Any:
        dialled.append(uri)
        raise Dialled

    monkeypatch.setattr(live, "ws_connect", stub)
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1beta" if not client_args.get("vertexai") else "v1beta1")

    async def dial() -> None:
        client = genai.Client(**client_args)
        with contextlib.suppress(Dialled):
            config = genai_types.LiveConnectConfig(response_modalities=[genai_types.Modality.AUDIO])
            async with client.aio.live.connect(model="m", config=config):
                pass

    asyncio.run(dial())
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION")
    return dialled[0]
