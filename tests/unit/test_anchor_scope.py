"""`trust.events.check_trail_anchors` inside one decision remembers the head the anchors were
compared with, never a head read apart from that comparison."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlops_platform.trust import events
from mlops_platform.trust.audit import AuditChainBroken
from mlops_platform.trust.audit.store import Anchor


class Trail:
    """A trail whose head a concurrent writer moves between two reads (the attack review
    deleted and re-inserted record 42 in a loop: one read saw 41, the next 42)."""

    url = "sqlite:///trail.db"

    def __init__(self) -> None:
        self.heads = [41]  # what `head()` reads, in turn
        self.compared: list[Anchor | None] = [Anchor(42, "h42", "trail")]
        self.comparisons = 0

    def head(self) -> Any:
        seq = self.heads.pop(0) if len(self.heads) > 1 else self.heads[0]
        return SimpleNamespace(seq=seq, record_hash=f"h{seq}")

    def check_anchors(self, anchors: Any) -> Anchor | None:
        self.comparisons += 1
        if not self.compared:
            raise AuditChainBroken("the anchors name record 42, which the trail no longer has")
        return self.compared.pop(0)


def test_the_head_remembered_is_the_one_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "decision_anchors", lambda env, model: [])
    trail = Trail()
    with events.one_decision():
        events.check_trail_anchors(trail, "local", "m")  # head read 41, compared at 42
        # Record 42 is now gone for good: the head is 41, which was never compared.
        with pytest.raises(AuditChainBroken):
            events.check_trail_anchors(trail, "local", "m")
    assert trail.comparisons == 2


def test_one_comparison_per_head_within_a_decision_and_every_call_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "decision_anchors", lambda env, model: [])
    trail = Trail()
    trail.heads = [42]
    trail.compared = [Anchor(42, "h42", "trail")] * 3
    with events.one_decision():
        for _ in range(3):
            events.check_trail_anchors(trail, "local", "m")
    assert trail.comparisons == 1
    events.check_trail_anchors(trail, "local", "m")
    events.check_trail_anchors(trail, "local", "m")
    assert trail.comparisons == 3
