"""The client's context-window ledger: how full the window is, by modality, over time.

Why: the service sends no message when it compresses; a drop in ``usageMetadata.promptTokenCount``
is the only sign (field.md). The ledger keeps our own estimate (from what was sent and received,
at the published token rates), re-bases it on the server's count whenever usage arrives, and
records a ``CompressionEvent`` when the context drops, saying whether the server's numbers showed
it ("reported") or only our model of the sliding window predicted it ("estimate").

Rules:
1. Sans-I/O: callers pass the time; nothing here reads a clock.
2. Turns mirror the service's sliding window: input opens or extends a user turn, output a model
   turn; compression is checked when a user turn begins (``triggerTokens`` counts the context
   before a turn runs) and drops the oldest turns until at or below the target, keeping the
   window's start at a user turn. The system instruction is never dropped.
3. Memory is bounded: timeline points closer than ``resolution`` seconds are merged, so an
   hour of 100 ms audio chunks holds thousands of points, not tens of thousands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import CONTEXT_WINDOW_TOKENS, ContextWindowCompressionConfig
from .messages import UsageMetadata

__all__ = ["CompressionEvent", "ContextLedger", "ContextPoint", "UsagePoint"]

Modality = Literal["TEXT", "AUDIO", "VIDEO", "IMAGE"]


@dataclass(slots=True)
class _Turn:
    role: str
    tokens: float


@dataclass(frozen=True, slots=True)
class ContextPoint:
    """The context size at one moment: our estimate, and the server's count when this point has one."""

    time: float
    estimated: float
    reported: int | None = None
    source: str = "input"


@dataclass(frozen=True, slots=True)
class CompressionEvent:
    """The context dropped from ``before`` to ``after`` tokens at ``time``."""

    time: float
    before: float
    after: float
    detected_by: Literal["reported", "estimate"]


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One ``usageMetadata`` report, flattened for tables and charts."""

    time: float
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    prompt_by_modality: dict[str, int]
    response_by_modality: dict[str, int]


class ContextLedger:
    """Tracks the context window of one session across all its connections.

    Args:
        window: the context window in tokens.
        compression: the session's compression config, or None when compression is off.
        resolution: points closer together than this many seconds are merged.
    """

    def __init__(
        self,
        window: int = CONTEXT_WINDOW_TOKENS,
        compression: ContextWindowCompressionConfig | None = None,
        resolution: float = 0.25,
    ) -> None:
        self.window = window
        self.trigger: int | None = compression.effective_trigger_tokens if compression else None
        self.target: int | None = compression.effective_target_tokens if compression else None
        self.resolution = resolution
        self.system_tokens = 0.0
        self._turns: list[_Turn] = []
        # Turn sizes are stored unscaled: a turn holds ``tokens * self._scale``. Re-basing on the
        # server's count then multiplies one number instead of every turn (it runs on every
        # usageMetadata, and a long session holds thousands of turns), and ``_turns_tokens`` keeps
        # the scaled sum so ``estimated`` (read on every audio chunk) is O(1).
        self._scale = 1.0
        self._turns_tokens = 0.0
        self.points: list[ContextPoint] = []
        self.compressions: list[CompressionEvent] = []
        self.usage: list[UsagePoint] = []
        self.input_by_modality: dict[str, float] = {}
        self.output_by_modality: dict[str, float] = {}
        self.last_reported: int | None = None
        self._anchor = float("-inf")  # time of the last point appended (not merged)

    # Public methods for recording what happened.

    @property
    def estimated(self) -> float:
        """Our current estimate of the tokens in the context."""
        return self.system_tokens + self._turns_tokens

    def record_system(self, tokens: float, time: float) -> None:
        """A system instruction was set or replaced."""
        self.system_tokens = tokens
        self._point(time, "system")

    def record_input(self, modality: str, tokens: float, time: float) -> CompressionEvent | None:
        """Client input reached the context; returns a compression event if a new turn triggered one."""
        event = None
        if not self._turns or self._turns[-1].role != "user":
            event = self._maybe_compress(time)
            self._turns.append(_Turn("user", 0.0))
        self._turns[-1].tokens += tokens / self._scale
        self._turns_tokens += tokens
        self.input_by_modality[modality] = self.input_by_modality.get(modality, 0.0) + tokens
        self._point(time, modality.lower())
        return event

    def record_history(self, role: str, tokens: float, time: float) -> None:
        """A whole turn restored by the client (``--role model`` history), counted as its role."""
        self._turns.append(_Turn(role, tokens / self._scale))
        self._turns_tokens += tokens
        self._point(time, "text")

    def record_output(self, modality: str, tokens: float, time: float) -> None:
        """Model output was generated (it joins the context as a model turn)."""
        if not self._turns or self._turns[-1].role != "model":
            self._turns.append(_Turn("model", 0.0))
        self._turns[-1].tokens += tokens / self._scale
        self._turns_tokens += tokens
        self.output_by_modality[modality] = self.output_by_modality.get(modality, 0.0) + tokens
        self._point(time, "output")

    def record_usage(self, usage: UsageMetadata, time: float) -> CompressionEvent | None:
        """Re-base the estimate on the server's count; returns a compression event if the count dropped."""
        prompt = usage.prompt_token_count or 0
        response = usage.response_token_count or 0
        total = usage.total_token_count if usage.total_token_count is not None else prompt + response
        self.usage.append(
            UsagePoint(
                time,
                prompt,
                response,
                total,
                usage.prompt_tokens_by_modality(),
                usage.response_tokens_by_modality(),
            )
        )
        event = None
        previous = self.last_reported
        if previous is not None and prompt < previous:
            recent = self.compressions[-1] if self.compressions else None
            if recent is not None and recent.detected_by == "estimate" and recent.time >= self.usage[-2].time:
                # Our model predicted it; the server's numbers now confirm it.
                self.compressions[-1] = CompressionEvent(recent.time, recent.before, prompt, "reported")
                event = self.compressions[-1]
            else:
                event = CompressionEvent(time, float(previous), float(prompt), "reported")
                self.compressions.append(event)
        self.last_reported = prompt + response if total is None else total
        self._rebase(float(self.last_reported))
        self.points.append(ContextPoint(time, self.estimated, self.last_reported, "usage"))
        return event

    # Public methods for reading.

    def tokens_per_second(self, now: float, span: float = 10.0) -> float:
        """The rate at which the context grew over the last ``span`` seconds (0 when it shrank)."""
        start = now - span
        base = None
        for point in reversed(self.points):
            if point.time < start:
                break
            base = point
        if base is None or now - base.time <= 0:
            return 0.0
        return max(0.0, (self.estimated - base.estimated) / (now - base.time))

    def forecast(self, now: float, span: float = 10.0) -> dict[str, float | None]:
        """Seconds until the next compression (trigger) and until the window is full, at the current rate."""
        rate = self.tokens_per_second(now, span)
        current = self.estimated

        def eta(limit: float | None) -> float | None:
            if limit is None or rate <= 0:
                return None
            return max(0.0, (limit - current) / rate)

        return {"rate": rate, "to_trigger": eta(self.trigger), "to_window": eta(self.window)}

    # Private methods.

    def _maybe_compress(self, time: float) -> CompressionEvent | None:
        if self.trigger is None or self.target is None or self.estimated <= self.trigger:
            return None
        before = self.estimated
        while self._turns and self.estimated > self.target:
            self._turns_tokens -= self._turns.pop(0).tokens * self._scale
        # The kept window starts at a user turn.
        while self._turns and self._turns[0].role != "user":
            self._turns_tokens -= self._turns.pop(0).tokens * self._scale
        self._turns_tokens = self._exact_turns_tokens()
        event = CompressionEvent(time, before, self.estimated, "estimate")
        self.compressions.append(event)
        self._point(time, "compression", merge=False)
        return event

    def _exact_turns_tokens(self) -> float:
        return float(sum(t.tokens for t in self._turns)) * self._scale

    def _rebase(self, reported_total: float) -> None:
        turns_total = self._turns_tokens
        wanted = max(0.0, reported_total - self.system_tokens)
        if turns_total > 0 and wanted > 0:
            self._scale *= wanted / turns_total
            if not 1e-6 < self._scale < 1e6:  # keep the stored sizes well inside float range
                for turn in self._turns:
                    turn.tokens *= self._scale
                self._scale = 1.0
        elif turns_total > 0:  # the server counts nothing besides the system instruction
            for turn in self._turns:
                turn.tokens = 0.0
        elif wanted:
            self._turns.append(_Turn("user", wanted / self._scale))
        self._turns_tokens = wanted if self._turns else 0.0

    def _point(self, time: float, source: str, merge: bool = True) -> None:
        point = ContextPoint(time, self.estimated, None, source)
        if merge and self.points:
            last = self.points[-1]
            if last.reported is None and last.source != "compression" and time - self._anchor < self.resolution:
                self.points[-1] = point
                return
        self.points.append(point)
        self._anchor = time
