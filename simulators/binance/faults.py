"""Fault injection for WebSocket connections (all off by default, seeded, counted).

Each fault has an ``*_every`` (deterministic: every N-th message/trade on a connection, 0 = off) and a
``*_prob`` (per message probability) trigger. Decisions are taken per connection with an RNG seeded from
``Faults.seed`` and the connection's ordinal, so a run is reproducible.

* drop: close the TCP connection abruptly (no close frame) before sending the message; the message is lost.
* stall: stop sending for ``stall_seconds`` without closing (messages queue up and follow afterwards).
* skip: do not send a trade on the WebSocket; it stays in the REST history (a gap to repair).
* duplicate: send the message twice.
* out_of_order: hold the message and send it after the next one (adjacent swap).
* malformed: send a corrupted copy of the message *before* the real one (the real one is still sent).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from typing import Any

MALFORMED_KINDS: tuple[str, ...] = ("bad_json", "missing_field", "wrong_type", "not_object", "empty", "binary")
FAULT_NAMES: tuple[str, ...] = ("drop", "stall", "skip", "duplicate", "out_of_order", "malformed")


@dataclass(frozen=True)
class Faults:
    """Fault-injection settings. ``*_every`` = every N-th message (0 off); ``*_prob`` = probability per message."""

    seed: int = 0
    drop_every: int = 0
    drop_prob: float = 0.0
    stall_every: int = 0
    stall_prob: float = 0.0
    stall_seconds: float = 5.0
    skip_every: int = 0
    skip_prob: float = 0.0
    duplicate_every: int = 0
    duplicate_prob: float = 0.0
    out_of_order_every: int = 0
    out_of_order_prob: float = 0.0
    malformed_every: int = 0
    malformed_prob: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within [0, 1], got {value}")
            if f.name.endswith("_every") and value < 0:
                raise ValueError(f"{f.name} must be >= 0, got {value}")
        if self.stall_seconds < 0:
            raise ValueError("stall_seconds must be >= 0")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}, got {unknown}")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f"{n}_every") or getattr(self, f"{n}_prob") for n in FAULT_NAMES)


@dataclass
class FaultCounters:
    """Server-wide counts of injected faults (reported by ``/health``)."""

    drop: int = 0
    stall: int = 0
    skip: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    malformed: int = 0
    malformed_by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drop": self.drop,
            "stall": self.stall,
            "skip": self.skip,
            "duplicate": self.duplicate,
            "out_of_order": self.out_of_order,
            "malformed": self.malformed,
            "malformed_by_kind": dict(self.malformed_by_kind),
        }


class ConnectionFaults:
    """Fault decisions for one connection. Call the ``should_*`` methods once per outgoing message."""

    def __init__(self, faults: Faults, connection_index: int, counters: FaultCounters) -> None:
        self.faults = faults
        self.counters = counters
        self.rng = random.Random(faults.seed * 1_000_003 + connection_index)
        self._seen: dict[str, int] = dict.fromkeys(FAULT_NAMES, 0)

    def _hit(self, name: str) -> bool:
        every = getattr(self.faults, f"{name}_every")
        prob = getattr(self.faults, f"{name}_prob")
        if not every and not prob:
            return False
        self._seen[name] += 1
        hit = bool(every) and self._seen[name] % every == 0
        if prob and self.rng.random() < prob:
            hit = True
        if hit:
            setattr(self.counters, name, getattr(self.counters, name) + 1)
        return hit

    def should_skip(self) -> bool:
        """For trades only: drop this trade from the WebSocket (it remains in the REST history)."""
        return self._hit("skip")

    def should_drop(self) -> bool:
        return self._hit("drop")

    def stall(self) -> float:
        """Seconds to stall before this message (0.0 for no stall)."""
        return self.faults.stall_seconds if self._hit("stall") else 0.0

    def should_duplicate(self) -> bool:
        return self._hit("duplicate")

    def should_reorder(self) -> bool:
        return self._hit("out_of_order")

    def malformed(self, stream: str | None, data: dict[str, Any], text: str) -> str | bytes | None:
        """A corrupted variant of the outgoing message, or None when this message is not corrupted.

        ``stream`` is None on raw (``/ws``) connections, where ``text`` is the ``data`` object alone.
        """
        if not self._hit("malformed"):
            return None
        kind = self.rng.choice(self.faults.malformed_kinds)
        self.counters.malformed_by_kind[kind] = self.counters.malformed_by_kind.get(kind, 0) + 1
        return corrupt(kind, stream, data, text, self.rng)


def _wrap(stream: str | None, data: Any) -> str:
    obj = data if stream is None else {"stream": stream, "data": data}
    return json.dumps(obj, separators=(",", ":"))


def corrupt(kind: str, stream: str | None, data: dict[str, Any], text: str, rng: random.Random) -> str | bytes:
    """Build one malformed message of ``kind`` from a valid one."""
    if kind == "bad_json":
        return text[: max(1, len(text) // 2)]
    if kind == "missing_field":
        keys = [k for k in ("a", "p", "q", "T", "s", "E", "k") if k in data] or list(data)
        victim = rng.choice(keys) if keys else None
        return _wrap(stream, {k: v for k, v in data.items() if k != victim})
    if kind == "wrong_type":
        bad = dict(data)
        for key in ("p", "q"):
            if isinstance(bad.get(key), str):
                try:
                    bad[key] = float(bad[key])
                except ValueError:
                    bad[key] = None
        for key in ("a", "T", "E"):
            if isinstance(bad.get(key), int):
                bad[key] = str(bad[key])
        return _wrap(stream, bad)
    if kind == "not_object":
        return '["unexpected",1,null]'
    if kind == "empty":
        return ""
    if kind == "binary":
        return text.encode()
    raise ValueError(f"unknown malformed kind {kind!r}")
