"""Where a session connects and how it authenticates: emulator, Gemini Developer API, Vertex AI.

Rules (live-protocol.md section 1):
- Keys go in headers only (``x-goog-api-key``, ``Authorization``), never in a URL: ``Endpoint.url``
  is safe to print, log and put in an exception; ``Endpoint.headers`` is never shown (its repr
  hides it).
- Gemini: ``v1beta`` by default; an ``auth_tokens/...`` key is an ephemeral token and goes to the
  ``BidiGenerateContentConstrained`` endpoint with ``Authorization: Token``.
- Vertex: ADC bearer token (google-auth, the optional extra ``vertex``); the host follows the
  location (``global`` -> ``aiplatform.googleapis.com``, ``us``/``eu`` -> the ``.rep`` hosts, any
  other region -> ``{location}-aiplatform.googleapis.com``).
- Model names get the backend's prefix: ``models/...`` (Gemini, emulator),
  ``projects/{p}/locations/{l}/publishers/google/models/...`` (Vertex).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigError, CredentialsError
from .credentials import env_or_dotenv, find_api_key, read_dotenv

__all__ = [
    "BACKENDS",
    "EMULATOR_URL_ENV",
    "Endpoint",
    "EndpointResolver",
]

BACKENDS = ("emulator", "gemini", "vertex")
EMULATOR_URL_ENV = "LIVE_NB_EMULATOR_URL"
EMULATOR_PLACEHOLDER_KEY = "live-nb-emulator"
GEMINI_HOST = "generativelanguage.googleapis.com"
GEMINI_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
GEMINI_CONSTRAINED_PATH = (
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained"
)
VERTEX_PATH = "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent"
VERTEX_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


@dataclass(frozen=True)
class Endpoint:
    """One resolved connection target.

    Attributes:
        backend: ``emulator``, ``gemini`` or ``vertex``.
        url: the WebSocket URL, never carrying a key (safe to show).
        model: the model name as the backend wants it in ``setup``.
        headers: auth headers; secret, hidden from repr.
    """

    backend: str
    url: str
    model: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Endpoint(backend={self.backend!r}, url={self.url!r}, model={self.model!r}, headers=<hidden>)"


def gemini_model_name(model: str) -> str:
    """``models/{m}`` unless already prefixed (``tunedModels/`` names are kept, as the SDK does)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def vertex_model_name(model: str, project: str | None, location: str | None) -> str:
    """The Vertex publisher model path, fully qualified when project and location are known."""
    if model.startswith(("projects/", "publishers/")):
        return model
    if model.startswith("models/"):
        model = model.removeprefix("models/")
    if project and location:
        return f"projects/{project}/locations/{location}/publishers/google/models/{model}"
    return f"publishers/google/models/{model}"


def vertex_host(location: str) -> str:
    """The Vertex AI host for a location (live-protocol.md section 1)."""
    if location == "global":
        return "aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"aiplatform.{location}.rep.googleapis.com"
    return f"{location}-aiplatform.googleapis.com"


def _check_ws_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError("url", url, "a ws:// or wss:// URL")
    if parts.query or parts.password:
        # A key in a URL would end up in logs and exceptions: refuse it outright.
        raise ConfigError("url", "<hidden>", "a URL without a query string or password (keys go in headers)")
    return url


class EndpointResolver:
    """Resolves the endpoint of a backend; for Vertex it refreshes the ADC token on each call.

    Construction validates everything that can be validated offline (backend, URL, key present,
    project for Vertex) so config errors come before anything is sent.

    Args:
        backend: ``emulator``, ``gemini`` or ``vertex``.
        model: the model name, with or without its prefix.
        url: the emulator URL (default ``$LIVE_NB_EMULATOR_URL``); for gemini a base URL replacing
            the service host (tests); for vertex a gateway URL used verbatim.
        api_key: Gemini key (default ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``, also from ``.env``).
        project, location: Vertex (default ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION``,
            location ``us-central1``).
        api_version: ``v1beta`` (gemini), ``v1alpha`` for ephemeral tokens, ``v1beta1`` (vertex).

    Raises:
        ConfigError: unknown backend, bad URL, or no emulator URL.
        CredentialsError: no key (gemini) or no google-auth / ADC (vertex).
    """

    def __init__(
        self,
        backend: str,
        model: str,
        url: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        location: str | None = None,
        api_version: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError("backend", backend, ", ".join(BACKENDS))
        if not model or not isinstance(model, str):
            raise ConfigError("model", model, "a model name such as gemini-live-2.5-flash-preview")
        self.backend = backend
        self._credentials: Any = None
        self._api_key: str | None = None
        self._project = project
        self._location = location
        dotenv = read_dotenv()
        if backend == "emulator":
            url = url or os.environ.get(EMULATOR_URL_ENV)
            if not url:
                raise ConfigError("url", None, f"the emulator's ws:// URL (or set {EMULATOR_URL_ENV})")
            # The emulator wants a credential, as the service does, but checks none: a fixed
            # placeholder keeps real keys out of local traffic.
            self._api_key = api_key or EMULATOR_PLACEHOLDER_KEY
            self.model = gemini_model_name(model)
            base = _check_ws_url(url)
            path = urlsplit(base).path
            self.url = base if path not in ("", "/") else base.rstrip("/") + GEMINI_PATH.format(
                version=api_version or "v1beta"
            )
        elif backend == "gemini":
            found = find_api_key()
            key = api_key or (found.value if found is not None else None)
            if not key:
                raise CredentialsError(
                    "no Gemini API key: pass api_key=, or set GEMINI_API_KEY or GOOGLE_API_KEY "
                    "(in the environment or a .env file in the working directory)"
                )
            self._api_key = key
            self.model = gemini_model_name(model)
            ephemeral = key.startswith("auth_tokens/")
            version = api_version or ("v1alpha" if ephemeral else "v1beta")
            template = GEMINI_CONSTRAINED_PATH if ephemeral else GEMINI_PATH
            base = _check_ws_url(url).rstrip("/") if url else f"wss://{GEMINI_HOST}"
            self.url = base + template.format(version=version)
        else:
            self._project = project or env_or_dotenv("GOOGLE_CLOUD_PROJECT", dotenv)
            self._location = location or env_or_dotenv("GOOGLE_CLOUD_LOCATION", dotenv) or "us-central1"
            self._api_key = api_key
            if url:
                self.url = _check_ws_url(url)  # gateway mode: verbatim
            elif api_key and not self._project:
                # Vertex express mode: API key, global host.
                self.url = f"wss://aiplatform.googleapis.com{VERTEX_PATH.format(version=api_version or 'v1beta1')}"
            else:
                self.url = (
                    f"wss://{vertex_host(self._location)}{VERTEX_PATH.format(version=api_version or 'v1beta1')}"
                )
            if not api_key:
                self._credentials = self._load_adc()
            if not (url or api_key or self._project):
                raise CredentialsError(
                    "Vertex AI needs a project: pass project=, set GOOGLE_CLOUD_PROJECT, "
                    "or use application default credentials that name one"
                )
            self.model = vertex_model_name(model, self._project, self._location)

    def __repr__(self) -> str:
        return f"EndpointResolver(backend={self.backend!r}, url={self.url!r}, model={self.model!r})"

    @property
    def needs_io(self) -> bool:
        """Whether ``resolve`` may block (a token refresh): run it in a thread then."""
        return self._credentials is not None

    def resolve(self) -> Endpoint:
        """Return the endpoint with fresh auth headers.

        Raises:
            CredentialsError: the ADC token could not be refreshed.
        """
        headers: dict[str, str] = {}
        if self.backend == "gemini":
            assert self._api_key is not None
            headers["x-goog-api-key"] = self._api_key
            if self._api_key.startswith("auth_tokens/"):
                headers["Authorization"] = f"Token {self._api_key}"
        elif self._api_key:
            headers["x-goog-api-key"] = self._api_key
        if self._credentials is not None:
            headers["Authorization"] = f"Bearer {self._bearer_token()}"
            quota = getattr(self._credentials, "quota_project_id", None)
            if quota:
                headers["x-goog-user-project"] = str(quota)
        return Endpoint(self.backend, self.url, self.model, headers)

    def _load_adc(self) -> Any:
        try:
            import google.auth  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise CredentialsError(
                "the vertex backend needs google-auth: pip install 'live_nb[vertex]'"
            ) from None
        try:
            credentials, adc_project = google.auth.default(scopes=list(VERTEX_SCOPES))
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
            raise CredentialsError(
                f"no application default credentials for Vertex AI ({type(exc).__name__}); "
                "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
            ) from None
        if not self._project and adc_project:
            self._project = adc_project
        return credentials

    def _bearer_token(self) -> str:
        credentials = self._credentials
        if not getattr(credentials, "valid", False) or not getattr(credentials, "token", None):
            try:
                import google.auth.transport.requests  # type: ignore[import-not-found,unused-ignore]

                credentials.refresh(google.auth.transport.requests.Request())
            except Exception as exc:
                raise CredentialsError(
                    f"could not refresh the Vertex AI access token ({type(exc).__name__})"
                ) from None
        return str(credentials.token)
