"""Where a session connects and how it authenticates: emulator, Gemini Developer API, Vertex AI.

Rules (live-protocol.md section 1):
- Keys go in headers only (``x-goog-api-key``, ``Authorization``), never in a URL: ``Endpoint.url``
  is safe to print, log and put in an exception. ``Endpoint.headers`` is an ``AuthHeaders``
  mapping whose ``repr`` and ``str`` show ``<redacted>`` for every value, so the key stays out of
  tracebacks even under IPython's ``%xmode Verbose`` (which prints the locals of every frame).
- Gemini: ``v1beta`` by default; an ``auth_tokens/...`` key is an ephemeral token and goes to the
  ``BidiGenerateContentConstrained`` endpoint with ``Authorization: Token``.
- Vertex: ADC bearer token (google-auth, the optional extra ``vertex``); the host follows the
  location (``global`` -> ``aiplatform.googleapis.com``, ``us``/``eu`` -> the ``.rep`` hosts, any
  other region -> ``{location}-aiplatform.googleapis.com``).
- Model names get the backend's prefix: ``models/...`` (Gemini, emulator),
  ``projects/{p}/locations/{l}/publishers/google/models/...`` (Vertex).
- ``wss://`` trusts the system store (``ssl.create_default_context()``, so ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR`` work as everywhere in Python); ``LiveModel(ssl=...)`` overrides it.

Base URLs from the environment (or ``.env``), honoured as google-genai 3.4.0 honours them, so one
setting points both google-genai and live_nb at the same proxy or test server:

- ``GOOGLE_GEMINI_BASE_URL`` (backend ``gemini``) replaces ``https://generativelanguage.googleapis.com/``.
  Its scheme becomes ``wss`` whatever it was (``http``, ``https``, ``ws``), its path is kept, and the
  Live path is appended as the SDK appends it (``f"{base}/ws/..."``): a base ending in ``/`` gives
  ``//ws/...``, exactly what the SDK sends (the service and the emulator accept both).
- ``GOOGLE_VERTEX_BASE_URL`` (backend ``vertex``) does the same for the Vertex host in the key mode
  (Vertex express) and the project mode (ADC bearer token). With neither a key nor a project it is a
  gateway, as in the SDK: the URL is dialled verbatim (so it must be ``ws://`` or ``wss://``), the
  model name is left as given and no credentials are sent or even looked up.
- An explicit ``url=`` wins over both (for gemini a base with a trailing ``/`` dropped, for vertex
  a gateway URL used verbatim), as ``http_options.base_url`` wins over them in the SDK.
- Which Vertex mode: an explicit key wins over a project or location from the environment, and a
  project or location (argument or environment) wins over a key from the environment, as in the
  SDK. One deliberate difference: the SDK leaves gateway mode only when project *and* location are
  constructor arguments, so ``GOOGLE_CLOUD_PROJECT`` plus ``GOOGLE_VERTEX_BASE_URL`` makes it dial
  the ``https://`` base verbatim with no credentials (which cannot connect); live_nb takes a project
  from the environment like one passed in, and sends the bearer token to the base URL's Live path.
- Not honoured: ``GOOGLE_GENAI_API_VERSION`` (live_nb's versions are ``v1beta`` / ``v1beta1``, the
  ones the Live API docs use; pass ``api_version=``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlparse, urlsplit

from ..exceptions import ConfigError, CredentialsError
from .credentials import env_or_dotenv, find_api_key, read_dotenv

__all__ = [
    "BACKENDS",
    "EMULATOR_URL_ENV",
    "GEMINI_BASE_URL_ENV",
    "VERTEX_BASE_URL_ENV",
    "AuthHeaders",
    "Endpoint",
    "EndpointResolver",
]

BACKENDS = ("emulator", "gemini", "vertex")
EMULATOR_URL_ENV = "LIVE_NB_EMULATOR_URL"
GEMINI_BASE_URL_ENV = "GOOGLE_GEMINI_BASE_URL"
VERTEX_BASE_URL_ENV = "GOOGLE_VERTEX_BASE_URL"
EMULATOR_PLACEHOLDER_KEY = "live-nb-emulator"
GEMINI_HOST = "generativelanguage.googleapis.com"
GEMINI_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
GEMINI_CONSTRAINED_PATH = (
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained"
)
VERTEX_PATH = "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent"
VERTEX_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REDACTED = "<redacted>"


class AuthHeaders(Mapping[str, str]):
    """Auth headers that never show their values: ``{'x-goog-api-key': '<redacted>'}``.

    Why a class and not a dict: the headers sit in the frames of every connect, and IPython's
    ``%xmode Verbose`` prints each frame's locals with ``repr``. websockets still sends the real
    values: ``connect(additional_headers=...)`` copies a Mapping through its keys and ``[]``
    (``Headers.update``).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, str] = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(dict.fromkeys(self._values, REDACTED))

    __str__ = __repr__

    def redact(self, text: str) -> str:
        """``text`` with every header value (and the credential after ``Bearer``/``Token``) replaced."""
        for value in self._values.values():
            for secret in (value, value.rpartition(" ")[2]):
                if len(secret) >= 4:  # an empty or tiny value would redact half the message
                    text = text.replace(secret, REDACTED)
        return text


@dataclass(frozen=True)
class Endpoint:
    """One resolved connection target.

    Attributes:
        backend: ``emulator``, ``gemini`` or ``vertex``.
        url: the WebSocket URL, never carrying a key (safe to show).
        model: the model name as the backend wants it in ``setup``.
        headers: auth headers; their values never show (``AuthHeaders``).
    """

    backend: str
    url: str
    model: str
    headers: AuthHeaders = field(default_factory=AuthHeaders)


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


def _split(url: str, name: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(name, url, "a well-formed URL") from None


def _check_ws_url(url: str, name: str = "url") -> str:
    parts = _split(url, name)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError(name, url, "a ws:// or wss:// URL")
    if parts.query or parts.username or parts.password:
        # A key in a URL would end up in logs and exceptions: refuse it outright.
        raise ConfigError(name, "<hidden>", "a URL without a query string or user info (keys go in headers)")
    return url


def sdk_websocket_base(base_url: str, name: str) -> str:
    """A base URL with its scheme forced to ``wss``, as google-genai's ``_websocket_base_url`` does.

    Nothing else changes (a trailing ``/`` stays), so the path appended after it is the SDK's.

    Raises:
        ConfigError: no host, or a query or user info (keys go in headers, never in a URL).
    """
    _split(base_url, name)
    parts = urlparse(base_url)  # urlparse, not urlsplit: what the SDK calls
    if not parts.netloc:
        raise ConfigError(name, base_url, "a URL with a host, e.g. https://host:port")
    if parts.query or parts.username or parts.password:
        raise ConfigError(name, "<hidden>", "a URL without a query string or user info (keys go in headers)")
    return parts._replace(scheme="wss").geturl()


class EndpointResolver:
    """Resolves the endpoint of a backend; for Vertex it refreshes the ADC token on each call.

    Construction validates everything that can be validated offline (backend, URL, key present,
    project for Vertex) so config errors come before anything is sent. The module docstring says
    which environment variables choose the URL.

    Args:
        backend: ``emulator``, ``gemini`` or ``vertex``.
        model: the model name, with or without its prefix.
        url: the emulator URL (default ``$LIVE_NB_EMULATOR_URL``); for gemini a base URL replacing
            the service host (default ``$GOOGLE_GEMINI_BASE_URL``); for vertex a gateway URL used
            verbatim (``$GOOGLE_VERTEX_BASE_URL`` is a base URL, see the module docstring).
        api_key: the key (default ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``, also from ``.env``; for
            vertex only when no project or location is set).
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
            raise ConfigError("model", model, "a model name such as gemini-3.8-live")
        self.backend = backend
        self._credentials: Any = None
        self._api_key: str | None = None
        self._project = project
        self._location = location
        self._ssl_context: ssl.SSLContext | None = None
        dotenv = read_dotenv()
        if backend == "emulator":
            url = url or os.environ.get(EMULATOR_URL_ENV)
            if not url:
                raise ConfigError("url", None, f"the emulator's ws:// URL (or set {EMULATOR_URL_ENV})")
            # The emulator wants a credential, as the service does, but checks none: a fixed
            # placeholder keeps real keys out of local traffic.
            self._api_key = api_key or EMULATOR_PLACEHOLDER_KEY
            self.model = gemini_model_name(model)
            # A bare URL stays bare: the emulator serves its own flavour there (Vertex's unless it was
            # started with mode="gemini"); a service path picks that backend's rules.
            self.url = _check_ws_url(url)
        elif backend == "gemini":
            self._init_gemini(model, url, api_key, api_version, dotenv)
        else:
            self._init_vertex(model, url, api_key, api_version, dotenv)

    def _init_gemini(
        self, model: str, url: str | None, api_key: str | None, api_version: str | None, dotenv: dict[str, str]
    ) -> None:
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
        path = (GEMINI_CONSTRAINED_PATH if ephemeral else GEMINI_PATH).format(
            version=api_version or ("v1alpha" if ephemeral else "v1beta")
        )
        base_url = env_or_dotenv(GEMINI_BASE_URL_ENV, dotenv)
        if url:
            self.url = _check_ws_url(url).rstrip("/") + path
        elif base_url:
            self.url = sdk_websocket_base(base_url, GEMINI_BASE_URL_ENV) + path  # no rstrip: the SDK's //ws
        else:
            self.url = f"wss://{GEMINI_HOST}{path}"

    def _init_vertex(
        self, model: str, url: str | None, api_key: str | None, api_version: str | None, dotenv: dict[str, str]
    ) -> None:
        env_project = env_or_dotenv("GOOGLE_CLOUD_PROJECT", dotenv)
        env_location = env_or_dotenv("GOOGLE_CLOUD_LOCATION", dotenv)
        explicit_place = bool(self._project or self._location)
        if api_key and not explicit_place:
            env_project = env_location = None  # an explicit key wins over an implicit project/location
        elif not api_key and not (explicit_place or env_project or env_location):
            found = find_api_key()  # a key from the environment only when no project/location is set
            api_key = found.value if found is not None else None
        self._api_key = api_key
        self._project = self._project or env_project
        self._location = self._location or env_location or "us-central1"
        path = VERTEX_PATH.format(version=api_version or "v1beta1")
        base_url = None if url else env_or_dotenv(VERTEX_BASE_URL_ENV, dotenv)
        if base_url and not (api_key or self._project):
            # Gateway mode, as in the SDK: verbatim URL, model as given, no credentials.
            self.url = _check_ws_url(base_url, VERTEX_BASE_URL_ENV)
            self.model = model
            return
        if url:
            self.url = _check_ws_url(url)  # gateway mode: verbatim
        elif base_url:
            self.url = sdk_websocket_base(base_url, VERTEX_BASE_URL_ENV) + path
        elif api_key and not self._project:
            self.url = f"wss://aiplatform.googleapis.com{path}"  # Vertex express mode: API key, global host
        else:
            self.url = f"wss://{vertex_host(self._location)}{path}"
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

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for ``wss://``: the system trust store (``ssl.create_default_context()``).

        Made at the first call and kept (one per ``LiveModel``, whose resolver this is), not at
        construction: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are read when a context is made, so a
        variable set after ``LiveModel(...)`` and before the first connect still counts.

        Raises:
            ssl.SSLError, OSError: the trust store could not be loaded (the caller reports it).
        """
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def resolve(self) -> Endpoint:
        """Return the endpoint with fresh auth headers.

        Raises:
            CredentialsError: the ADC token could not be refreshed.
        """
        # The token first: nothing secret is in this frame's locals if the refresh fails.
        bearer = self._bearer_token() if self._credentials is not None else None
        pairs: list[tuple[str, str]] = []
        if self._api_key:
            pairs.append(("x-goog-api-key", self._api_key))
            if self.backend == "gemini" and self._api_key.startswith("auth_tokens/"):
                pairs.append(("Authorization", f"Token {self._api_key}"))
        if bearer is not None:
            pairs.append(("Authorization", f"Bearer {bearer}"))
            quota = getattr(self._credentials, "quota_project_id", None)
            if quota:
                pairs.append(("x-goog-user-project", str(quota)))
        return Endpoint(self.backend, self.url, self.model, AuthHeaders(pairs))

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
