"""The one exception of the trade contract."""

from __future__ import annotations


class ContractError(ValueError):
    """A message that does not satisfy the contract. ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
