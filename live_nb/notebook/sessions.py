"""``SessionRegistry``: the one owner of the notebook's named sessions.

Why one owner: a named session's life (open, resume, close), the in-kernel emulator it may need,
the model and credentials it is built from, and what the notebook keeps of it were spread over the
magics, their session entries and the metadata bridge, with a resumption handle copied into five
places. Here:

- the session (``LiveSession``, the client) owns its live handle: ``session.handle``;
- the registry keeps each open session's ``Entry`` (its options, its one listener, its request
  lock) and, after a close, the ended entry, so ``%live history`` and ``%live resume`` still reach
  the closed session and the handle it ended with;
- the metadata bridge keeps the one stored record per name (notebook metadata or the sidecar),
  which is what survives a kernel restart. The registry makes that record (``records.make_record``,
  with the retention of the session's flavour) whenever the session reports a new handle, and is
  the only listener that tells the bridge anything: one listener per session routes the reply to
  its cell, keeps the handle and refreshes the status bar.

Threads: the coroutines run on live_nb's private loop (``_loop``), and so do the listeners; the
synchronous methods are called from the kernel's main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import _loop
from ..client.credentials import find_api_key
from ..exceptions import ConfigError, InvalidState, LiveError
from ..protocol.messages import SessionResumptionUpdate
from ._reply import Router
from .metadata import MetadataBridge, get_bridge
from .options import FLAVOR_RULES, ConnectOptions, flavor_phrase, service_path
from .records import make_record

if TYPE_CHECKING:
    from ..client.session import LiveModel, LiveSession

__all__ = [
    "CONNECT_TIMEOUT",
    "Entry",
    "RegistrySettings",
    "SessionRegistry",
    "build_model",
    "emulator_cache_dir",
    "make_emulator_dir",
]

logger = logging.getLogger("live_nb.notebook")

CONNECT_TIMEOUT = 30.0
"""Seconds a session may take to open (connect and setup) before the cell gives up."""


class RegistrySettings(Protocol):
    """What the registry reads from ``LiveMagics``' config, at the moment it needs it."""

    emulator_db: str
    persist_handles: bool


@dataclass
class Entry:
    """A named session the registry manages (its handle is ``session.handle``, nowhere else)."""

    name: str
    options: ConnectOptions
    session: LiveSession | None = None
    model: LiveModel | None = None
    router: Router = field(default_factory=Router)
    """Hands the session's replies to the cell waiting for them (``_reply``)."""
    remove_listener: Callable[[], None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One request at a time per session, in the order the cells ran."""

    @property
    def handle(self) -> str | None:
        """The handle a resume would use: the session's latest, else the one it was opened with."""
        live = self.session.handle if self.session is not None else None
        return live or self.options.handle


def build_model(options: ConnectOptions, url: str | None) -> LiveModel:
    """The ``LiveModel`` of ``options``; a Developer API key is read here, at connect time, never kept.

    Args:
        options: resolved options (``options.resolve_options``).
        url: the emulator's URL with its service path, or None for the real backends.
    """
    from ..client.session import LiveModel

    api_key = None
    if options.backend == "gemini":
        key = find_api_key()
        api_key = key.value if key is not None else None
    kwargs: dict[str, Any] = {}
    if options.backend == "vertex":
        kwargs = {"project": options.project or None, "location": options.location or None}
    if options.tools:
        kwargs["tools"] = list(options.tools)  # the client's tool loop runs them (client/tool_loop.py)
    return LiveModel(
        options.model,
        generation_config=options.generation_config(),
        backend=options.backend,
        url=url,
        api_key=api_key,
        **kwargs,
    )


class SessionRegistry:
    """Named sessions of one shell: open, resume, close; the in-kernel emulators; what the notebook keeps.

    Args:
        shell: the IPython shell (its metadata bridge keeps records); None outside IPython.
        settings: ``LiveMagics`` (``emulator_db``, ``persist_handles``), read when needed.
        say: where the one-time notices go (the emulator's announcement): ``print`` in a cell.
    """

    def __init__(self, shell: Any, settings: RegistrySettings, say: Callable[[str], None] = print) -> None:
        self.shell = shell
        self.settings = settings
        self.say = say
        self.sessions: dict[str, Entry] = {}
        """Open (or opening) sessions by name."""
        self.ended: dict[str, Entry] = {}
        """The last entry of each closed name: ``%live history`` and ``%live resume`` after a close."""
        self._emulators: dict[tuple[float, str], Any] = {}
        self._told_emulator: set[str] = set()
        self._track_failed: set[str] = set()

    # -- what the notebook keeps ----------------------------------------------------------------

    def bridge(self) -> MetadataBridge | None:
        """This shell's metadata bridge (made, and its comm opened, on first use); None without a shell."""
        if self.shell is None:
            return None
        try:
            bridge = get_bridge(self.shell)
        except Exception:
            logger.debug("live_nb: no metadata bridge", exc_info=True)
            return None
        bridge.persist = bool(self.settings.persist_handles)
        return bridge

    def stored_record(self, name: str) -> dict[str, Any]:
        """The record the bridge holds for ``name`` (notebook metadata or sidecar), or {}."""
        bridge = self.bridge()
        record = bridge.records.get(name) if bridge is not None else None
        return dict(record) if isinstance(record, dict) else {}

    def known_handle(self, name: str) -> str | None:
        """The handle ``name`` would resume with: its open session's, its ended one's, else the stored one."""
        for entry in (self.sessions.get(name), self.ended.get(name)):
            if entry is not None and entry.handle:
                return entry.handle
        handle = self.stored_record(name).get("handle")
        return handle if isinstance(handle, str) and handle else None

    def ended_options(self, name: str, handle: str) -> ConnectOptions | None:
        """The options of the closed session ``name`` whose handle is ``handle`` (to reopen it alike)."""
        entry = self.ended.get(name)
        return entry.options if entry is not None and entry.handle == handle else None

    # -- the in-kernel emulator -----------------------------------------------------------------

    def prepare(self, options: ConnectOptions) -> None:
        """Start the in-kernel emulator ``options`` need (and say so once), from the main thread.

        Called as options are resolved, so the announcement comes before anything else is said;
        on the loop thread (a request opening its session) ``ensure`` starts it instead.
        """
        if options.in_kernel_emulator and not _loop.in_loop_thread():
            flavor = options.flavor or "vertex"
            url = _loop.block(_loop.submit(self.emulator(options.time_scale, flavor)))
            self._announce_emulator(options.automatic, flavor, url)

    async def emulator(self, time_scale: float, flavor: str) -> str:
        """The URL of the in-process emulator serving ``flavor`` at ``time_scale`` (started on first use).

        One emulator per (time scale, flavour), each with its own database file, so the handles of
        one never meet the other's connections.
        """
        key = (time_scale, flavor)
        emulator = self._emulators.get(key)
        if emulator is None:
            from ..emulator import Emulator  # type: ignore[attr-defined]

            db = Path(self.settings.emulator_db)
            suffix = "" if flavor == "vertex" else f"-{flavor}"
            if time_scale != 1.0:
                suffix += f"-x{time_scale:g}"
            db = db.with_name(f"{db.stem}{suffix}{db.suffix}")
            make_emulator_dir(db.parent)
            # consumed_limit bounds the emulator's test-only log of consumed messages (an hour of audio
            # would otherwise hold ~115 MB in the kernel).
            emulator = Emulator(
                host="127.0.0.1", port=0, time_scale=time_scale, db_path=str(db), consumed_limit=10_000, mode=flavor
            )
            await emulator.start()
            self._emulators[key] = emulator
        return str(emulator.url)

    def _announce_emulator(self, automatic: bool, flavor: str, url: str) -> None:
        """Say once per flavour, plainly, that the bundled emulator is in use, why, and whose rules it serves."""
        if flavor in self._told_emulator:
            return
        self._told_emulator.add(flavor)
        why = (
            "no API key found (GEMINI_API_KEY / GOOGLE_API_KEY, environment or .env)"
            if automatic
            else "LiveMagics.backend is 'emulator'"
        )
        other = "gemini" if flavor == "vertex" else "vertex"
        self.say(
            f"live_nb: {why}; using the bundled Live API emulator, offline in this kernel "
            f"({flavor_phrase(flavor)}) on {url}. "
            f"%config LiveMagics.emulator_flavor = '{other}' serves {FLAVOR_RULES[other]}."
        )

    # -- opening and closing (loop thread) ------------------------------------------------------

    async def ensure(self, name: str, options: ConnectOptions) -> Entry:
        """The open session called ``name``, opening it with ``options`` if there is none.

        Raises:
            InvalidState: it did not open within ``CONNECT_TIMEOUT``.
            LiveError: the client's refusal or failure to connect.
        """
        entry = self.sessions.get(name)
        if entry is not None and entry.session is None:
            async with entry.lock:  # another request is opening it: wait for that
                pass
            entry = self.sessions.get(name)
        if entry is not None and entry.session is not None:
            return entry
        entry = Entry(name=name, options=options)
        self.sessions[name] = entry
        try:
            async with entry.lock:
                await asyncio.wait_for(self._connect(entry), CONNECT_TIMEOUT)
        except BaseException as exc:
            if self.sessions.get(name) is entry:
                del self.sessions[name]
            if isinstance(exc, asyncio.TimeoutError):
                raise InvalidState(f"could not open session {name!r} within {CONNECT_TIMEOUT:.0f} s") from None
            raise
        return entry

    async def _connect(self, entry: Entry) -> None:
        options = entry.options
        url = None
        if options.backend == "emulator" and options.emulator_url:
            url = options.emulator_url
        elif options.backend == "emulator":
            # The in-kernel emulator is dialled on its flavour's own service path, so the client knows
            # whose rules apply (catalogue.wire_flavor) exactly as it would on the real backend.
            flavor = options.flavor or "vertex"
            base = await self.emulator(options.time_scale, flavor)
            self._announce_emulator(options.automatic, flavor, base)
            url = base + service_path(flavor)
        model = build_model(options, url)
        session = await model.connect(session_resumption=options.resumption())
        entry.model, entry.session = model, session
        entry.remove_listener = session.add_listener(self._listener(entry))
        self._show(entry)
        self._keep(entry)

    async def close(self, name: str) -> None:
        """Close session ``name`` (if open); it stays reachable as ``ended[name]``."""
        entry = self.sessions.pop(name, None)
        if entry is None:
            return
        if entry.remove_listener is not None:
            with contextlib.suppress(Exception):
                entry.remove_listener()
        bridge = self.bridge()
        if bridge is not None:
            with contextlib.suppress(Exception):
                bridge.untrack(name)
        if entry.router.current is not None:
            entry.router.current.fail(InvalidState(f"session {name!r} was closed"))
        if entry.session is not None:
            self.ended[name] = entry
            with contextlib.suppress(LiveError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(entry.session.close(), 5.0)

    async def close_all(self) -> None:
        """Close every session and stop the in-process emulators."""
        for name in list(self.sessions):
            await self.close(name)
        emulators, self._emulators = self._emulators, {}
        for emulator in emulators.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(emulator.stop(), 5.0)
                emulator.cleanup()

    def shutdown(self) -> None:
        """Close everything from the main thread (``%unload_ext``); a no-op when nothing is open."""
        if not self.sessions and not self._emulators:
            return
        if _loop.running():
            with contextlib.suppress(Exception):
                _loop.block(_loop.submit(self.close_all()), 15.0)

    # -- the one listener (loop thread) ---------------------------------------------------------

    def _listener(self, entry: Entry) -> Callable[[object], None]:
        """The session's only listener: route the reply, keep a new handle, refresh the status bar."""

        def on_item(item: object) -> None:
            entry.router(item)  # logs its own failures: a display error never stops the rest
            try:
                if isinstance(item, SessionResumptionUpdate):
                    self._keep(entry)
                bridge = self.bridge()
                if bridge is None:
                    return
                if entry.session is not None and entry.session.state == "closed":
                    bridge.untrack(entry.name, entry.session)
                else:
                    bridge.changed()
            except Exception:
                logger.debug("live_nb: status of %r not reported", entry.name, exc_info=True)

        return on_item

    def _show(self, entry: Entry) -> None:
        """Put the session on the status bar."""
        bridge = self.bridge()
        if bridge is not None and entry.session is not None:
            with contextlib.suppress(ConfigError):  # the name was checked by the magics
                bridge.track(entry.name, entry.session)

    def _keep(self, entry: Entry) -> None:
        """Hand the bridge a record of the session's handle when it is new (one record per name)."""
        session = entry.session
        handle = session.handle if session is not None else None
        if not handle:
            return
        bridge = self.bridge()
        if bridge is None or not bridge.persist:
            return
        try:
            stored = bridge.record(entry.name)
            if stored is not None and stored.get("handle") == handle:
                return
            bridge.keep(entry.name, make_record(session, retention=entry.options.handle_retention))
        except ConfigError:
            logger.debug("live_nb: metadata bridge refused %r (it has told the user)", entry.name, exc_info=True)
        except Exception:
            # A handle must never go unkept in silence: say so, once per name.
            if entry.name not in self._track_failed:
                self._track_failed.add(entry.name)
                logger.warning(
                    "live_nb: the handle of session %r is not kept with the notebook", entry.name, exc_info=True
                )


def emulator_cache_dir() -> Path:
    """live_nb's own cache directory, where the in-kernel emulator keeps its database by default."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "live_nb"


def make_emulator_dir(directory: Path) -> None:
    """Create the in-kernel emulator's directory owner-only (0700, missing parents too).

    Its database holds the HMAC secret that signs handles and every session's context. Earlier
    versions made ``emulator_cache_dir()`` with the umask's mode (0755): that one, ours by name, is
    tightened to 0700 when we own it; a directory the user chose (``LIVE_NB_EMULATOR_DB``) that
    already exists is left as it is.
    """
    from ..emulator.store import make_private_dirs

    make_private_dirs(str(directory))
    if directory.absolute() == emulator_cache_dir().absolute():
        _tighten_directory(directory)


def _tighten_directory(directory: Path) -> None:
    """Drop group and other permissions from ``directory`` if we own it (never through a symlink)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    if not hasattr(os, "fchmod") or not flags & getattr(os, "O_NOFOLLOW", 0):
        return  # no POSIX modes to speak of (Windows)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return  # a symlink (ELOOP) or not a directory: not ours to change
    try:
        info = os.fstat(fd)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.fchmod(fd, info.st_mode & 0o700)
    except OSError:
        logger.debug("live_nb: could not tighten %s", directory, exc_info=True)
    finally:
        os.close(fd)
