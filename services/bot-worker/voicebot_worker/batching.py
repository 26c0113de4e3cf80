"""Batches across calls for models with per-call state (the noise filter bank, Silero)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def passes(keys: Sequence[Hashable]) -> list[list[int]]:
    """Indexes of `keys` split into passes in which each key appears once, each key's items in their
    order: a call whose frames queued up has several items, and its state must see them one by one."""
    out: list[list[int]] = []
    pending = list(range(len(keys)))
    while pending:
        seen: set[Hashable] = set()
        batch: list[int] = []
        later: list[int] = []
        for index in pending:
            (later if keys[index] in seen else batch).append(index)
            seen.add(keys[index])
        out.append(batch)
        pending = later
    return out
