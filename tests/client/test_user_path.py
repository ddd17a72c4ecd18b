"""The path a user with a real key takes: environment only, ``wss://``, the system trust store.

Everything runs over real sockets on 127.0.0.1. A TLS emulator stands in for the service, with the
base-URL variables google-genai honours (``GOOGLE_GEMINI_BASE_URL``, ``GOOGLE_VERTEX_BASE_URL``)
pointing at it and ``SSL_CERT_FILE`` trusting its self-signed certificate, so nothing in
``LiveModel(...)`` names a backend, URL or TLS context. A small TLS proxy in front of the emulator
records what each upgrade carried (the emulator checks a credential is there but keeps none); a
local token endpoint answers the service-account JWT exchange for the ADC case. Failures must be
ConnectErrors naming the URL, and the key must not show in a Verbose IPython traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from emulator_constants import GEMINI_PATH, TEST_CHUNK_DELAY, VERTEX_PATH
from oauth_stand_in import ACCESS_TOKEN, TokenEndpoint, service_account_file
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import ConnectError
from live_nb.protocol.config import LiveGenerationConfig
from live_nb.protocol.messages import ServerContent, UsageMetadata

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-3.8-live"  # today's default, served on both backends
VERTEX_MODEL = "gemini-3.8-live"
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
SECRET = "fake-api-key-user-path-secret-0123456789"
ENVIRONMENT = (
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_GENAI_USE_VERTEXAI", "LIVE_NB_EMULATOR_URL", "LIVE_NB_BACKEND", "SSL_CERT_FILE", "SSL_CERT_DIR",
)
T = TypeVar("T")


@pytest.fixture(autouse=True)
def user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the machine: no key, base URL, trust-store override or .env; loopback not proxied."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    """The TLS emulator on 127.0.0.1 with its self-signed certificate in tmp_path/certs."""
    async with Emulator(tls=True, cert_dir=str(tmp_path / "certs"), chunk_delay=TEST_CHUNK_DELAY) as emu:  # stops and cleans up on exit
        yield emu


class RecordingProxy:
    """A TLS websockets relay in front of the emulator that records every upgrade request.

    Why: the emulator never keeps a credential, so which key or token reached the service is read
    here, from the wire. It serves the emulator's own certificate, so the same ``SSL_CERT_FILE``
    trusts both.
    """

    FORWARDED = ("x-goog-api-key", "authorization", "x-goog-user-project")

    def __init__(self, emulator: Emulator) -> None:
        assert emulator.cert_path is not None and emulator.key_path is not None
        self.upstream = emulator.url
        self.requests: list[tuple[str, Headers]] = []
        self._server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_tls.load_cert_chain(emulator.cert_path, emulator.key_path)
        self._upstream_tls = ssl.create_default_context(cafile=emulator.cert_path)
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What a user puts in GOOGLE_GEMINI_BASE_URL / GOOGLE_VERTEX_BASE_URL: https://, as for google-genai."""
        return f"https://127.0.0.1:{self.port}"

    def header(self, name: str, index: int = -1) -> str | None:
        """A header of a recorded request (the last one by default)."""
        return self.requests[index][1].get(name)

    async def start(self) -> RecordingProxy:
        self._server = await serve(
            self._relay, "127.0.0.1", 0, ssl=self._server_tls, process_request=self._record,
            compression=None, max_size=None, ping_interval=None,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _record(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append((request.path, request.headers.copy()))
        return None

    async def _relay(self, client: ServerConnection) -> None:
        assert client.request is not None
        headers = [(k, v) for k, v in client.request.headers.raw_items() if k.lower() in self.FORWARDED]
        async with connect(
            self.upstream + client.request.path, additional_headers=headers, ssl=self._upstream_tls,
            compression=None, max_size=None, ping_interval=None, proxy=None,
        ) as upstream:
            pumps = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            if upstream.close_code is not None:
                await client.close(upstream.close_code, upstream.close_reason or "")


async def _pump(source: Any, sink: Any) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in source:
            await sink.send(message)


@pytest.fixture
async def proxy(emulator: Emulator) -> AsyncIterator[RecordingProxy]:
    relay = await RecordingProxy(emulator).start()
    try:
        yield relay
    finally:
        await relay.stop()


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()


async def ask(session: LiveSession, text: str) -> list[Any]:
    """Send a text turn and collect the reply up to its usage (sent with every turnComplete)."""
    await session.send_text(text)
    items: list[Any] = []
    async with asyncio.timeout(15):
        async for item in session.receive():
            items.append(item)
            if isinstance(item, UsageMetadata) or (isinstance(item, ServerContent) and item.turn_complete):
                break
    return items


def model_replies(session: LiveSession) -> list[str]:
    return [text for _, role, text in session.transcript if role == "model"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# (a)-(c): the three ways a real user reaches the service, each from the environment alone.


async def test_gemini_key_and_base_url_from_the_environment_connect_over_tls(
    emulator: Emulator, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", proxy.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.cert_path))
    model = LiveModel(MODEL, CONFIG)
    assert model.backend == "gemini"
    assert model.url == f"wss://127.0.0.1:{proxy.port}{GEMINI_PATH}"
    async with model.connect() as session:
        items = await ask(session, "hello over the user's path")
        assert any(isinstance(i, ServerContent) and i.turn_complete for i in items)
        assert model_replies(session) and model_replies(session)[0].strip()
        assert SECRET not in repr(session) and SECRET not in session.url
    assert emulator.paths == [(GEMINI_PATH, "gemini")]
    assert proxy.header("x-goog-api-key") == SECRET
    assert proxy.header("Authorization") is None


async def test_vertex_express_key_and_base_url_from_the_environment(
    emulator: Emulator, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", proxy.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.cert_path))
    model = LiveModel(VERTEX_MODEL, CONFIG, backend="vertex")
    assert model.url == f"wss://127.0.0.1:{proxy.port}{VERTEX_PATH}"
    assert model.resolver.model == f"publishers/google/models/{VERTEX_MODEL}"
    async with model.connect() as session:
        await ask(session, "hello vertex express")
        assert model_replies(session)
    assert emulator.paths == [(VERTEX_PATH, "vertex")]
    assert proxy.header("x-goog-api-key") == SECRET


async def test_vertex_with_service_account_adc_sends_the_exchanged_bearer_token(
    emulator: Emulator, proxy: RecordingProxy, token_endpoint: TokenEndpoint,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    pytest.importorskip("google.auth")
    credentials = service_account_file(tmp_path / "sa.json", token_endpoint.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", proxy.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.cert_path))
    model = LiveModel(VERTEX_MODEL, CONFIG, backend="vertex")
    assert model.url == f"wss://127.0.0.1:{proxy.port}{VERTEX_PATH}"
    assert model.resolver.model == (
        f"projects/env-project/locations/us-central1/publishers/google/models/{VERTEX_MODEL}"
    )
    async with model.connect() as session:
        await ask(session, "hello with a service account")
        assert model_replies(session)
    assert proxy.header("Authorization") == f"Bearer {ACCESS_TOKEN}"
    assert proxy.header("x-goog-api-key") is None
    (claims,) = token_endpoint.assertions  # one exchange, for our service account and Vertex's scope
    assert claims["iss"] == "live-nb-test@sa-project.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert emulator.paths == [(VERTEX_PATH, "vertex")]


# TLS context: the system store by default (made once per LiveModel), ssl= as an override.


async def test_default_tls_context_is_made_once_per_model(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.url.replace("wss://", "https://"))
    made: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    model = LiveModel(MODEL, CONFIG)
    # Set after LiveModel(...): the context is made at the first connect, so this still counts.
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.cert_path))
    for _ in range(2):
        async with model.connect() as session:
            await ask(session, "hello")
    assert len(made) == 1


async def test_ssl_argument_overrides_the_system_store(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.url.replace("wss://", "https://"))
    trusting = ssl.create_default_context(cafile=emulator.cert_path)
    async with LiveModel(MODEL, CONFIG, ssl=trusting).connect() as session:
        await ask(session, "hello with my own context")
        assert model_replies(session)


async def test_ws_url_gets_no_ssl_argument_even_when_one_is_given() -> None:
    plain = Emulator(chunk_delay=TEST_CHUNK_DELAY)
    await plain.start()
    try:
        model = LiveModel(MODEL, CONFIG, backend="gemini", url=plain.url, api_key=SECRET,
                          ssl=ssl.create_default_context())
        async with model.connect() as session:
            await ask(session, "hello over ws")
    finally:
        await plain.stop()
        plain.cleanup()


# (d), (e): failures are ConnectErrors naming the URL, in plain words.


async def test_untrusted_certificate_is_a_connect_error_that_says_so(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"https://127.0.0.1:{emulator.port}")
    model = LiveModel(MODEL, CONFIG)
    with pytest.raises(ConnectError) as info:
        await model.connect()
    message = str(info.value)
    assert model.url in message
    assert "TLS certificate not trusted" in message and "SSL_CERT_FILE" in message
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert SECRET not in message


@pytest.mark.parametrize(
    ("base_url", "words"),
    [
        pytest.param("https://127.0.0.1:{closed}", "connection refused", id="closed-port"),
        # A name the resolver rejects itself (a leading hyphen): no DNS query leaves the machine.
        pytest.param("https://-live-nb-no-such-host-:443", "host not found", id="bad-host"),
        pytest.param("https://" + "a" * 64 + ".invalid:443", "invalid host name", id="unencodable-host"),
        # http:// becomes wss:// as in google-genai: a plain server resets the TLS hello.
        pytest.param("http://127.0.0.1:{plain}", "does the server speak TLS?", id="tls-to-a-plain-port"),
    ],
)
async def test_unreachable_server_is_a_connect_error_naming_the_url(
    base_url: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = Emulator(chunk_delay=TEST_CHUNK_DELAY)
    await plain.start()
    try:
        monkeypatch.setenv("GEMINI_API_KEY", SECRET)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url.format(closed=closed_port(), plain=plain.port))
        model = LiveModel(MODEL, CONFIG, open_timeout=5)
        with pytest.raises(ConnectError) as info:
            await model.connect()
    finally:
        await plain.stop()
        plain.cleanup()
    assert model.url in str(info.value) and words in str(info.value)
    assert info.value.__context__ is None and SECRET not in str(info.value)


async def test_http_status_at_the_upgrade_keeps_the_status_and_redirects_are_not_followed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 302 to another origin would carry x-goog-api-key there (websockets strips only Authorization)."""
    hits: list[str] = []

    def redirect(connection: ServerConnection, request: Request) -> Response:
        hits.append(request.path)
        response = connection.respond(302, "moved\n")
        response.headers["Location"] = f"wss://localhost:{emulator.port}/elsewhere"
        return response

    async def never(ws: ServerConnection) -> None:
        raise AssertionError("no websocket is opened on a redirect")

    assert emulator.cert_path is not None and emulator.key_path is not None
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(emulator.cert_path, emulator.key_path)
    async with serve(never, "127.0.0.1", 0, ssl=tls, process_request=redirect) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        monkeypatch.setenv("GEMINI_API_KEY", SECRET)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"https://127.0.0.1:{port}")
        monkeypatch.setenv("SSL_CERT_FILE", str(emulator.cert_path))
        with pytest.raises(ConnectError) as info:
            await LiveModel(MODEL, CONFIG).connect()
    assert info.value.status == 302 and "HTTP 302" in str(info.value)
    assert len(hits) == 1 and emulator.paths == []


# The key never shows in a traceback, even in IPython's Verbose mode (locals of every frame).


def _run_in_thread_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


@contextlib.contextmanager
def background_loop() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """An event loop in a thread, for servers that must run while IPython runs a cell on its own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield lambda coro: _run_in_thread_loop(loop, coro)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def verbose_traceback_of(cell: str, namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """Run ``cell`` in a real IPython shell under ``%xmode Verbose``; the traceback text it showed."""
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()  # type: ignore[no-untyped-call]  # the shared test shell
    shown: list[str] = []
    monkeypatch.setattr(
        shell, "_showtraceback", lambda etype, evalue, stb: shown.append(shell.InteractiveTB.stb2text(stb))
    )
    mode = shell.InteractiveTB.mode
    shell.push(namespace)
    try:
        shell.run_line_magic("xmode", "Verbose")
        result = shell.run_cell(cell)
    finally:
        shell.InteractiveTB.set_mode(mode)
        shell.drop_by_id(namespace)
    assert len(shown) == 1, shown
    return ANSI.sub("", shown[0]), result.error_in_exec


def frame_locals_text(exc: BaseException) -> str:
    """``repr`` of every local of every frame in the traceback: what any Verbose printer could show."""
    texts: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        texts.extend(f"{name}={value!r}" for name, value in tb.tb_frame.f_locals.items())
        tb = tb.tb_next
    return "\n".join(texts)


CELL = "model = LiveModel(MODEL, CONFIG)\nsession = await model.connect()\n"


def test_key_is_not_in_a_verbose_ipython_traceback_for_a_closed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"https://127.0.0.1:{port}")
    text, error = verbose_traceback_of(CELL, {"LiveModel": LiveModel, "MODEL": MODEL, "CONFIG": CONFIG}, monkeypatch)
    assert isinstance(error, ConnectError)
    url = f"wss://127.0.0.1:{port}{GEMINI_PATH}"
    assert url in text and "connection refused" in text
    assert "<redacted>" in text  # Verbose did print the endpoint's headers: redacted
    assert SECRET not in text
    assert SECRET not in frame_locals_text(error)


def test_key_is_not_in_a_verbose_ipython_traceback_for_an_untrusted_certificate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with background_loop() as run:
        emu = Emulator(tls=True, cert_dir=str(tmp_path / "certs"), chunk_delay=TEST_CHUNK_DELAY)
        run(emu.start())
        try:
            monkeypatch.setenv("GEMINI_API_KEY", SECRET)
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"https://127.0.0.1:{emu.port}")
            text, error = verbose_traceback_of(
                CELL, {"LiveModel": LiveModel, "MODEL": MODEL, "CONFIG": CONFIG}, monkeypatch
            )
        finally:
            run(emu.stop())
            emu.cleanup()
    assert isinstance(error, ConnectError)
    assert f"wss://127.0.0.1:{emu.port}{GEMINI_PATH}" in text
    assert "TLS certificate not trusted" in text
    assert "<redacted>" in text
    assert SECRET not in text
    assert SECRET not in frame_locals_text(error)
