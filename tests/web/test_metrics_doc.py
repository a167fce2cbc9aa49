"""docs/OBSERVABILITY.md names every metric of a scrape and every ``reason`` label of
``bms_can_frames_dropped_total``."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.canbus.decode import REASONS
from gateway.web.metrics import GatewayMetrics
from tests.web.helpers import Pack

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


def test_every_metric_of_a_scrape_is_documented() -> None:
    pack = Pack(cells=4)
    pack.run(30)
    metrics = GatewayMetrics(pack.observe)
    metrics.observe_step(0.001)
    suffix = {"counter": "_total", "info": "_info"}
    names = {
        f.name + suffix.get(f.type, "")
        for f in text_string_to_metric_families(metrics.render().decode())
        if not f.name.endswith("_created")  # prometheus_client's creation time of the histogram
    }
    assert "bms_charge_phase" in names
    documented = set(re.findall(r"`(bms_[a-z_]+)`", DOC.read_text()))
    assert names - documented == set()
