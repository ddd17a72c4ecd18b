"""Offline speech for the emulator: hear (PocketSphinx) and speak (eSpeak NG), no network, no I/O loop.

Why this module: the Live API's current models answer only in audio, and offline the emulator used
to answer speech with a sine tone. Here the emulator gets two small engines that ship inside their
wheels (nothing is downloaded at run time):

* recognition: ``pocketsphinx`` (CMU Sphinx, English acoustic model, dictionary and 3-gram language
  model inside the wheel). Rough on synthetic speech, so callers must present its text as what
  *offline recognition heard*, never as what the user said.
* synthesis: eSpeak NG through ctypes, library and voices from ``espeakng-loader``. eSpeak reports
  word events with the sample where each word starts, so transcription chunks carry the words
  actually spoken in their audio (real timing, not a proportional guess).

Sans-I/O in spirit: no asyncio, no sockets, no files written. Every call here is blocking CPU work
(milliseconds for synthesis, about half real time for recognition), so the emulator calls it from a
worker thread (``asyncio.to_thread``).

Threads:
    * eSpeak NG keeps global state (one voice, one callback), so all synthesis goes through one
      process-wide lock: any thread may call ``synthesize``/``speak``; calls run one at a time. They
      take a few milliseconds each, so the lock is never held for long.
    * A PocketSphinx decoder is not thread-safe, but separate decoders are independent. Each
      ``Recognizer`` borrows a decoder from a process-wide pool for one turn (first ``feed`` until
      ``finish``) and guards it with its own lock, so many sessions decode in parallel, one decoder
      each, and a decoder is loaded (0.25-1 s, about 90 MB) only when more turns overlap than ever
      before.

The engines are imported lazily: importing this module costs nothing, and the emulator runs (with
its tone) when they are not installed. ``speech_available()`` says whether they are, and
``unavailable_reason()`` why not.
"""

from __future__ import annotations

import ctypes
import importlib
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ASR_RATE",
    "DEFAULT_VOICE",
    "LIVE_VOICES",
    "OUTPUT_RATE",
    "Recognizer",
    "Resampler",
    "Speech",
    "SpeechChunk",
    "VoiceSpec",
    "Word",
    "espeak_voices",
    "recognition_available",
    "resample",
    "speak",
    "speech_available",
    "synthesis_available",
    "synthesize",
    "transcribe",
    "unavailable_reason",
    "voice_spec",
    "voices",
]

ASR_RATE = 16000
"""Sample rate the recogniser decodes (the Live API's input rate too)."""
OUTPUT_RATE = 24000
"""Sample rate of the Live API's audio output, the default for synthesis."""
ESPEAK_RATE = 22050
"""eSpeak NG's native rate (it says so at initialisation; checked there)."""


# ---------------------------------------------------------------------------------------------
# Resampling: a streaming polyphase windowed-sinc filter in numpy.
# ---------------------------------------------------------------------------------------------

_HALF_TAPS = 16  # filter half-length in input samples at full bandwidth; widened when downsampling


@lru_cache(maxsize=16)
def _filter_table(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """Polyphase table ``[phase, tap]`` for output time ``n*down/up`` and the filter's half length.

    Output ``n`` sits at input time ``t = base + phase/up`` with ``base = n*down // up``; it is the sum
    over inputs ``k = base-half+1 .. base+half`` of ``x[k] * h(t - k)``, ``h`` a Kaiser-windowed sinc
    whose cutoff is the lower of the two Nyquist frequencies (slightly below, to keep aliasing out).
    Each phase's row is normalised to unit sum so a constant stays constant.
    """
    cutoff = min(1.0, up / down) * 0.94
    half = math.ceil(_HALF_TAPS / min(1.0, up / down))
    phases = np.arange(up, dtype=np.float64)[:, None] / up
    taps = np.arange(2 * half, dtype=np.float64)[None, :]
    d = phases + (half - 1) - taps  # t - k for every phase and tap
    window = np.kaiser(4 * half + 1, 8.0)
    # Sample the (symmetric) Kaiser window at the continuous offsets d in (-half, half].
    w = np.interp(d, np.linspace(-half, half, 4 * half + 1), window)
    table = cutoff * np.sinc(cutoff * d) * w
    table /= table.sum(axis=1, keepdims=True)
    return table, half


class Resampler:
    """Streaming PCM16 mono resampler: ``process`` chunks in, ``flush`` at the end.

    Chunk boundaries leave no seams (it keeps the filter's history), and the output length over a
    whole stream is ``ceil(n_in * dst / src)``. Not thread-safe: one per stream.
    """

    def __init__(self, src: int, dst: int) -> None:
        if src <= 0 or dst <= 0:
            raise ValueError(f"sample rates must be positive, got {src} -> {dst}")
        g = math.gcd(src, dst)
        self.src = src
        self.dst = dst
        self._up = dst // g
        self._down = src // g
        table, self._half = _filter_table(self._up, self._down)
        self._table32 = np.ascontiguousarray(table, dtype=np.float32)
        # Buffer of input samples; _buf[0] is input sample number _buf_start (negative: zero history).
        self._buf: npt.NDArray[np.float32] = np.zeros(self._half - 1, dtype=np.float32)
        self._buf_start = -(self._half - 1)
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples produced

    def process(self, pcm16: bytes) -> bytes:
        """Resample one chunk; returns what can be produced so far (the filter lags ``half`` samples)."""
        if self.src == self.dst:
            return pcm16
        x = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        return self._produce(final=False)

    def flush(self) -> bytes:
        """The stream's tail (inputs past the end read as silence); the resampler is then spent."""
        if self.src == self.dst:
            return b""
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1, dtype=np.float32)])
        return self._produce(final=True)

    def _produce(self, *, final: bool) -> bytes:
        up, down, half = self._up, self._down, self._half
        # Output n needs input up to base(n) + half; at the end, outputs run while t < n_in.
        if final:
            n_end = -(-self._n_in * up // down)
        else:
            last_ok = self._n_in - 1 - half  # largest base whose window is complete
            n_end = (last_ok * up) // down + 1 if last_ok >= 0 else 0
        if n_end <= self._n_out:
            return b""
        n = np.arange(self._n_out, n_end, dtype=np.int64)
        base = n * down // up
        phase = n * down - base * up
        first = base - half + 1 - self._buf_start
        # One pass per tap keeps memory at a few vectors of the output's length.
        coeffs = self._table32.T[:, phase]
        y = np.zeros(len(n), dtype=np.float32)
        for j in range(2 * half):
            y += self._buf[first + j] * coeffs[j]
        self._n_out = n_end
        # Drop inputs no future output needs.
        keep_from = int((n_end * down) // up) - half + 1 - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return _to_pcm16(y)


def _to_pcm16(y: npt.NDArray[np.float32]) -> bytes:
    return np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes()


def resample(pcm16: bytes, src: int, dst: int) -> bytes:
    """Resample a whole PCM16 mono buffer from ``src`` Hz to ``dst`` Hz (polyphase windowed sinc)."""
    if src == dst:
        return pcm16
    r = Resampler(src, dst)
    return r.process(pcm16) + r.flush()


# ---------------------------------------------------------------------------------------------
# Availability: lazy imports, a reason when missing.
# ---------------------------------------------------------------------------------------------


def _import(name: str) -> tuple[Any, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # ImportError, or a broken shared library (OSError)
        return None, f"{name} is not installed or does not load ({type(exc).__name__}: {exc})"


@lru_cache(maxsize=1)
def _sphinx() -> tuple[Any, str]:
    return _import("pocketsphinx")


def recognition_available() -> bool:
    """True when the recogniser's engine (pocketsphinx) imports."""
    return _sphinx()[0] is not None


def synthesis_available() -> bool:
    """True when eSpeak NG (from espeakng-loader) loads and initialises."""
    try:
        _espeak()
    except _Unavailable:
        return False
    return True


def speech_available() -> bool:
    """True when both engines work; otherwise ``unavailable_reason()`` says why."""
    return recognition_available() and synthesis_available()


def unavailable_reason() -> str:
    """Why offline speech is off (one line, for the emulator to say once), or ``""`` when it is on."""
    reasons = []
    if not recognition_available():
        reasons.append(_sphinx()[1])
    try:
        _espeak()
    except _Unavailable as exc:
        reasons.append(str(exc))
    if not reasons:
        return ""
    return (
        "offline speech is off: " + "; ".join(reasons)
        + " (both are dependencies of live_nb: pip install --force-reinstall pocketsphinx espeakng-loader)"
    )


class _Unavailable(RuntimeError):
    """An engine is missing; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# Voices: Live API prebuilt voice names -> eSpeak NG voice, variant, pitch and speed.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """How eSpeak NG renders one voice.

    Attributes:
        variant: eSpeak variant (``m1``..``m7``, ``f1``..``f5``: formants and pitch range).
        pitch: base pitch, 0-100 (eSpeak's default is 50).
        range: pitch range (intonation), 0-100 (default 50).
        wpm: speaking rate in words per minute (default 175).
        gender: ``male`` or ``female``, as the variant sounds.
    """

    variant: str
    pitch: int
    range: int
    wpm: int
    gender: str


def _m(variant: str, pitch: int, rng: int = 50, wpm: int = 170) -> VoiceSpec:
    return VoiceSpec(variant, pitch, rng, wpm, "male")


def _f(variant: str, pitch: int, rng: int = 60, wpm: int = 170) -> VoiceSpec:
    return VoiceSpec(variant, pitch, rng, wpm, "female")


LIVE_VOICES: Mapping[str, VoiceSpec] = {
    # The eight classic Live voices, after their published character (Upbeat, Informative, ...).
    # Only the variants that PocketSphinx recognises best are used (m1 m5 m6 f1 f2 f5; m2-m4, m7,
    # f3, f4 lost half the words in a round trip), told apart by pitch, intonation range and speed.
    "Puck": _m("m5", 55, 60, 170),  # upbeat
    "Charon": _m("m1", 45, 45, 160),  # informative
    "Kore": _f("f2", 55, 50, 165),  # firm
    "Fenrir": _m("m6", 58, 70, 180),  # excitable
    "Aoede": _f("f5", 55, 65, 160),  # breezy
    "Leda": _f("f1", 65, 65, 170),  # youthful
    "Orus": _m("m1", 38, 40, 160),  # firm
    "Zephyr": _f("f5", 65, 75, 170),  # bright
    # The rest of the prebuilt voices: the same variants, other pitches and speeds.
    "Achernar": _f("f1", 58, 55, 160),
    "Achird": _m("m5", 48, 55, 165),
    "Algenib": _m("m6", 35, 45, 160),
    "Algieba": _m("m1", 50, 55, 165),
    "Alnilam": _m("m5", 42, 50, 165),
    "Autonoe": _f("f2", 62, 65, 170),
    "Callirrhoe": _f("f5", 60, 55, 165),
    "Despina": _f("f1", 52, 60, 165),
    "Enceladus": _m("m6", 40, 40, 155),
    "Erinome": _f("f2", 50, 50, 160),
    "Gacrux": _f("f1", 48, 45, 160),
    "Iapetus": _m("m1", 55, 50, 170),
    "Laomedeia": _f("f5", 68, 70, 175),
    "Pulcherrima": _f("f2", 66, 65, 170),
    "Rasalgethi": _m("m5", 60, 60, 170),
    "Sadachbia": _m("m6", 52, 65, 175),
    "Sadaltager": _m("m1", 42, 55, 165),
    "Schedar": _m("m5", 38, 45, 160),
    "Sulafat": _f("f1", 60, 60, 165),
    "Umbriel": _m("m6", 46, 55, 170),
    "Vindemiatrix": _f("f2", 46, 45, 160),
    "Zubenelgenubi": _m("m5", 52, 50, 160),
}
DEFAULT_VOICE = "Puck"
"""The Live API's voice when a setup names none."""

_LIVE_BY_LOWER = {name.lower(): name for name in LIVE_VOICES}
_RAW_VOICE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*(?:\+[A-Za-z0-9]+)?$", re.IGNORECASE)


def voice_spec(voice: str | None) -> tuple[str, VoiceSpec]:
    """The Live voice name a request resolves to and its eSpeak rendering.

    ``voice`` is a prebuilt voice name (any case); ``None`` or an unknown name gives the default
    (Puck), as the emulator has no better match.
    """
    name = _LIVE_BY_LOWER.get((voice or "").strip().lower(), DEFAULT_VOICE)
    return name, LIVE_VOICES[name]


def voices() -> list[str]:
    """The Live API prebuilt voice names this module renders distinctly, sorted."""
    return sorted(LIVE_VOICES)


def espeak_voices() -> list[str]:
    """eSpeak NG language voices available (identifiers such as ``en-us``, ``de``); [] if missing."""
    try:
        return _espeak().list_voices()
    except _Unavailable:
        return []


def _espeak_language(language: str | None) -> str:
    """eSpeak voice for a BCP-47 code (``en-US`` -> ``en-us``, ``de-DE`` -> ``de``); English by default."""
    if not language:
        return "en-us"
    code = language.strip().lower().replace("_", "-")
    known = set(espeak_voices())
    for candidate in (code, code.split("-")[0]):
        if candidate in known:
            return candidate
    return "en-us"


# ---------------------------------------------------------------------------------------------
# eSpeak NG through ctypes.
# ---------------------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RAND_SEED = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters of the UTF-8 text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample number at the native rate
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


class _Espeak:
    """The one eSpeak NG instance of the process; every method takes ``lock``."""

    lock = threading.Lock()

    def __init__(self, loader: Any) -> None:
        self._lib = ctypes.CDLL(str(loader.get_library_path()))
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        self._seed: Any = getattr(lib, "espeak_ng_SetRandSeed", None)  # eSpeak NG >= 1.51
        if self._seed is not None:
            self._seed.argtypes = [ctypes.c_long]
            self._seed.restype = None
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 100, str(loader.get_data_path()).encode(), _INIT_DONT_EXIT
        )
        if rate != ESPEAK_RATE:
            raise _Unavailable(f"eSpeak NG did not initialise (returned {rate}, expected {ESPEAK_RATE} Hz)")
        self._pcm: list[bytes] = []
        self._words: list[tuple[int, int, int]] = []  # (text_position, length, sample)
        self._callback = _SynthCallback(self._on_audio)  # kept alive as long as the library holds it
        lib.espeak_SetSynthCallback(self._callback)
        self._current: tuple[str, VoiceSpec] | None = None

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0:
            self._pcm.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._words.append((ev.text_position, ev.length, ev.sample))
            i += 1
        return 0

    def list_voices(self) -> list[str]:
        with self.lock:
            arr = self._lib.espeak_ListVoices(None)
            out: list[str] = []
            i = 0
            while arr[i]:
                ident = arr[i].contents.identifier
                if ident:
                    out.append(ident.decode().rsplit("/", 1)[-1].lower())
                i += 1
            return sorted(set(out))

    def synth(self, text: str, language: str, spec: VoiceSpec) -> tuple[bytes, list[tuple[int, int, int]]]:
        with self.lock:
            lib = self._lib
            if self._current != (language, spec):
                name = f"{language}+{spec.variant}".encode()
                if lib.espeak_SetVoiceByName(name) != 0 and lib.espeak_SetVoiceByName(language.encode()) != 0:
                    lib.espeak_SetVoiceByName(b"en-us")
                lib.espeak_SetParameter(_PARAM_RATE, spec.wpm, 0)
                lib.espeak_SetParameter(_PARAM_PITCH, spec.pitch, 0)
                lib.espeak_SetParameter(_PARAM_RANGE, spec.range, 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
                self._current = (language, spec)
            if self._seed is not None:
                self._seed(_RAND_SEED)  # breathy variants add noise: same text, same voice -> same PCM
            self._pcm, self._words = [], []
            data = text.encode("utf-8") + b"\0"
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            pcm, words = b"".join(self._pcm), self._words
            self._pcm, self._words = [], []
            if err != 0:
                raise RuntimeError(f"eSpeak NG failed to synthesise (error {err})")
            return pcm, words


@lru_cache(maxsize=1)
def _espeak_or_reason() -> tuple[_Espeak | None, str]:
    loader, reason = _import("espeakng_loader")
    if loader is None:
        return None, reason
    try:
        return _Espeak(loader), ""
    except _Unavailable as exc:
        return None, str(exc)
    except (OSError, AttributeError) as exc:
        return None, f"eSpeak NG does not load ({type(exc).__name__}: {exc})"


def _espeak() -> _Espeak:
    engine, reason = _espeak_or_reason()
    if engine is None:
        raise _Unavailable(reason)
    return engine


# ---------------------------------------------------------------------------------------------
# Synthesis: speech with word timing, and chunks whose text is the words started in their audio.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One spoken word.

    Attributes:
        start: character offset in the text (0-based) where the word starts.
        end: character offset just past it.
        sample: output sample (at ``Speech.rate``) where its sound starts.
    """

    start: int
    end: int
    sample: int


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """A slice of speech audio and the text whose words start in it (may be ``""``)."""

    pcm: bytes
    text: str


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesised speech: PCM16 mono at ``rate``, the text, and where each word starts.

    Word timing is eSpeak NG's own (its word events carry the sample each word starts at), scaled
    to the output rate; it is exact to a few milliseconds, not a proportional estimate.
    """

    text: str
    pcm: bytes
    rate: int
    voice: str
    words: tuple[Word, ...]

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.pcm) / 2 / self.rate

    def chunks(self, seconds: float = 0.1) -> list[SpeechChunk]:
        """Split into chunks of ``seconds`` (the last may be shorter) for streaming.

        Each chunk's text runs from the first word starting in its audio up to the first word
        starting in a later chunk, so ``"".join(c.text for c in chunks) == text`` and an
        ``outputTranscription`` sent with a chunk names exactly the words that begin in it.
        """
        step = max(1, round(seconds * self.rate)) * 2
        n = len(self.pcm)
        out: list[SpeechChunk] = []
        cut = 0  # text offset already given out
        w = 0
        for begin in range(0, max(n, 1), step):
            end_sample = (begin + step) // 2
            while w < len(self.words) and self.words[w].sample < end_sample:
                w += 1
            last = begin + step >= n
            upto = len(self.text) if last else (self.words[w].start if w < len(self.words) else len(self.text))
            upto = max(upto, cut)
            out.append(SpeechChunk(self.pcm[begin : begin + step], self.text[cut:upto]))
            cut = upto
        return out


def speak(text: str, voice: str | None = None, rate: int = OUTPUT_RATE, language: str | None = None) -> Speech:
    """Synthesise ``text`` with word timing.

    Args:
        text: what to say (plain text; no SSML is interpreted).
        voice: a Live API prebuilt voice name (``speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName``);
            unknown or ``None`` gives Puck's rendering.
        rate: output sample rate (24000 for the Live API).
        language: ``speechConfig.languageCode`` (``en-US``, ``de-DE``...); eSpeak's voice for that
            language when it has one, US English otherwise.

    Raises:
        RuntimeError: eSpeak NG is not installed (``unavailable_reason()`` says why) or failed.
    """
    engine = _espeak()
    name, spec = voice_spec(voice)
    lang = _espeak_language(language)
    if not text.strip():
        return Speech(text, b"", rate, name, ())
    native, events = engine.synth(text, lang, spec)
    pcm = resample(native, ESPEAK_RATE, rate)
    words: list[Word] = []
    last_start, last_sample = -1, 0
    for pos, length, sample in events:
        start = max(0, min(len(text), pos - 1))
        if start <= last_start:  # one written token spoken as several words ("42" -> forty two)
            continue
        s = max(last_sample, sample * rate // ESPEAK_RATE)
        words.append(Word(start, min(len(text), start + max(length, 1)), s))
        last_start, last_sample = start, s
    return Speech(text, pcm, rate, name, tuple(words))


def synthesize(text: str, voice: str | None = None, rate: int = OUTPUT_RATE, language: str | None = None) -> bytes:
    """PCM16 mono at ``rate`` (24 kHz by default) of ``text`` spoken in ``voice``; see ``speak``."""
    return speak(text, voice, rate, language).pcm


# ---------------------------------------------------------------------------------------------
# Recognition: a pool of PocketSphinx decoders, one borrowed per turn.
# ---------------------------------------------------------------------------------------------


class _DecoderPool:
    """Idle decoders kept for the next turn (loading one takes about a second)."""

    def __init__(self, keep: int = 4) -> None:
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self.keep = keep
        self.created = 0

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        ps, reason = _sphinx()
        if ps is None:
            raise RuntimeError(reason)
        decoder = ps.Decoder(loglevel="FATAL", samprate=ASR_RATE)
        with self._lock:
            self.created += 1
        return decoder

    def release(self, decoder: Any) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(decoder)


_POOL = _DecoderPool()


def _clean(hypstr: str) -> str:
    # PocketSphinx writes alternative pronunciations as word(2) and fillers as <sil>, [NOISE].
    words = [re.sub(r"\(\d+\)$", "", w) for w in hypstr.split()]
    return " ".join(w for w in words if w and not w.startswith(("<", "[")))


# Cepstral mean to start a session's first streaming turn from. PocketSphinx's own default
# ("40,3,-1", from the model's feat.params) is far from speech at ordinary levels and cost a third
# of the words of a short first turn; this is the mean it settled on after 48 utterances of speech
# (eSpeak voices at full scale). Later turns start from the mean the session's own speech left.
_VOICED_RMS = 200.0  # a 30 ms frame this loud (-44 dBFS) may hold speech
_MIN_VOICED_FRAMES = 5  # 150 ms: below that a turn holds no word (PocketSphinx hears "dog" in silence)
_CMN_PRIOR = "61.6,-4.69,3.78,14.5,-15.5,0.707,-18.3,2.30,-0.722,2.19,8.75,-6.32,13.5"


def _voiced_frames(pcm16: bytes) -> int:
    """30 ms frames (16 kHz) loud enough to hold speech."""
    x = np.frombuffer(pcm16[: len(pcm16) // 960 * 960], dtype="<i2").astype(np.float32).reshape(-1, 480)
    return int((np.sqrt((x * x).mean(axis=1)) > _VOICED_RMS).sum()) if len(x) else 0


class Recognizer:
    """Recognition of one turn at a time: ``feed`` chunks, ``finish`` for the text.

    ``finish`` ends the turn and readies the recogniser for the next one; the decoder goes back to
    the shared pool between turns. The text is what offline recognition heard, lower case, ``""``
    when it heard nothing (silence, a tone, noise); it is often wrong in places, so show it as such.

    Two ways to decode, both deterministic for a given session's audio:

    * ``streaming=True`` (default): decodes as audio arrives, so ``feed`` gives partial text and
      ``finish`` returns at once. Channel normalisation (live CMN) starts from the mean the session's
      previous turn left (a fixed speech prior for the first turn), never from another session's.
    * ``streaming=False``: keeps the turn's audio and decodes it whole at ``finish`` with the
      turn's own mean (batch CMN). About 10% more words right on a first turn, no partials, and
      ``finish`` takes about a quarter of the turn's length.

    One ``Recognizer`` per session; its calls may come from any thread (a lock serialises them).
    """

    def __init__(self, rate: int = ASR_RATE, *, streaming: bool = True, cmn: str | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.rate = rate
        self.streaming = streaming
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._resampler: Resampler | None = None
        self._pending: list[bytes] = []
        self._partial = ""
        self._cmn = cmn or _CMN_PRIOR
        self._voiced = 0
        self._in_turn = False
        self.samples = 0
        """Samples (at ``rate``) fed in the current turn."""

    def feed(self, pcm16: bytes) -> str | None:
        """Take a chunk of PCM16 mono at ``rate``; the partial text when it changed, else None."""
        with self._lock:
            if not self._in_turn:
                self._in_turn = True
                self._resampler = Resampler(self.rate, ASR_RATE) if self.rate != ASR_RATE else None
                if self.streaming:
                    self._decoder = _POOL.acquire()
                    self._decoder.set_cmn(self._cmn)
                    self._decoder.start_utt()
            self.samples += len(pcm16) // 2
            data = self._resampler.process(pcm16) if self._resampler else pcm16[: len(pcm16) // 2 * 2]
            self._voiced += _voiced_frames(data)
            if not self.streaming:
                self._pending.append(data)
                return None
            if data:
                self._decoder.process_raw(data, False, False)
            hyp = self._decoder.hyp()
            text = _clean(hyp.hypstr) if hyp is not None else ""
            if text == self._partial:
                return None
            self._partial = text
            return text

    def finish(self) -> str:
        """End the turn: the final text (``""`` for nothing heard); the next ``feed`` starts a new turn."""
        with self._lock:
            tail = self._resampler.flush() if self._resampler is not None else b""
            decoder, pending = self._decoder, self._pending
            self._decoder, self._resampler, self._pending = None, None, []
            self._partial, fed, self.samples = "", self.samples, 0
            voiced, self._voiced = self._voiced + _voiced_frames(tail), 0
            self._in_turn = False
            if voiced < _MIN_VOICED_FRAMES or not fed:  # silence: nothing heard, the session's CMN kept
                if decoder is not None:
                    decoder.end_utt()
                    _POOL.release(decoder)
                return ""
            if decoder is None:  # batch: decode the whole turn now
                decoder = _POOL.acquire()
                try:
                    decoder.start_utt()
                    decoder.process_raw(b"".join(pending) + tail, False, True)
                    decoder.end_utt()
                    hyp = decoder.hyp()
                    return _clean(hyp.hypstr) if hyp is not None else ""
                finally:
                    _POOL.release(decoder)
            try:
                if tail:
                    decoder.process_raw(tail, False, False)
                decoder.end_utt()
                self._cmn = str(decoder.get_cmn())
                hyp = decoder.hyp()
                return _clean(hyp.hypstr) if hyp is not None else ""
            finally:
                _POOL.release(decoder)

    def reset(self) -> None:
        """Drop the current turn unheard (e.g. the session closed mid-turn)."""
        self.finish()

    @property
    def cmn(self) -> str:
        """The channel mean the next streaming turn starts from: pass it as ``cmn=`` to a new
        ``Recognizer`` that carries on this one's session (a resumed connection)."""
        return self._cmn

    close = reset


def transcribe(pcm16: bytes, rate: int = ASR_RATE) -> str:
    """One-shot recognition of a whole buffer (for checks: what does this reply audio say?).

    Decodes the buffer whole (``streaming=False``), so the result depends on nothing else.
    """
    rec = Recognizer(rate, streaming=False)
    for i in range(0, len(pcm16), 6400):
        rec.feed(pcm16[i : i + 6400])
    return rec.finish()
