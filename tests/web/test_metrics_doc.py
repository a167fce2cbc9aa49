"""docs/OBSERVABILITY.md names every ``reason`` label of ``bms_can_frames_dropped_total``."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.canbus.decode import REASONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "OBSERVABILITY.md"


def test_every_drop_reason_is_documented() -> None:
    # The decoder's reasons, plus the link's receive-queue overflow (gateway.app.observed).
    row = next(
        line for line in DOC.read_text().splitlines() if "`bms_can_frames_dropped_total`" in line
    )
    listed = re.search(r"`reason` \(([^)]*)\)", row)
    assert listed is not None
    documented = {r.strip() for r in listed.group(1).split(",")}
    assert documented == {*REASONS, "overflow"}
