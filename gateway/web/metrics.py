"""Prometheus metrics of one gateway (``prometheus_client``), built at scrape time.

Nothing is computed in the control step except the step duration (a histogram observation):
the collector reads the latest ``ControlOutput`` and the counters when ``/metrics`` is scraped.
Names follow Prometheus conventions: base units in the name (``_volts``, ``_amperes``,
``_celsius``, ``_ratio``, ``_joules``, ``_seconds``), ``_total`` for counters; cells and sensors
are 1-based labels, as on the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from gateway.core.kinds import ChargePhase
from gateway.core.model import ControlOutput, GatewayMode, Limit

__all__ = ["MODES", "PHASES", "STEP_BUCKETS_S", "GatewayMetrics", "Observed"]

MODES = tuple(m.value for m in GatewayMode)
"""The states of ``bms_mode``: the values of ``GatewayMode``."""
PHASES = tuple(p.value for p in ChargePhase)
"""The states of ``bms_charge_phase``: the values of ``ChargePhase``."""
STEP_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
"""Buckets of the control step duration: a 512-cell step takes about a millisecond."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What a scrape reads besides the latest step (filled by the supervisor)."""

    out: ControlOutput | None
    links: Mapping[str, bool] = field(default_factory=dict)
    frames_decoded: int = 0
    frames_ignored: int = 0
    frames_dropped: Mapping[str, int] = field(default_factory=dict)  # reason -> count
    # Output counters: "mqtt_sent", "mqtt_dropped" (queue bound), "mqtt_reconnects", ...
    outputs: Mapping[str, int] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)  # gateway_id, version, chemistry


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class _Collector(Collector):
    def __init__(self, source: Callable[[], Observed]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        obs = self._source()
        if obs.info:
            yield InfoMetricFamily("bms_gateway", "Gateway identity", value=dict(obs.info))
        yield from self._counters(obs)
        links = GaugeMetricFamily("bms_link_up", "1 when the link is up", labels=["link"])
        for name, up in sorted(obs.links.items()):
            links.add_metric([name], 1.0 if up else 0.0)
        yield links
        out = obs.out
        if out is None:
            return
        yield StateSetMetricFamily(
            "bms_mode", "Gateway mode", value={m.value: out.mode is m for m in GatewayMode}
        )
        yield from self._charge(out)
        yield from self._pack(out)
        yield from self._cells(out)
        yield from self._limits(out)
        yield from self._alarms(out)

    @staticmethod
    def _counters(obs: Observed) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "bms_can_frames_decoded", "CAN frames of mapped messages decoded", obs.frames_decoded
        )
        yield CounterMetricFamily(
            "bms_can_frames_ignored", "CAN frames whose id the profile does not map",
            obs.frames_ignored,
        )  # fmt: skip
        dropped = CounterMetricFamily(
            "bms_can_frames_dropped", "CAN frames dropped, per reason", labels=["reason"]
        )
        for reason, n in sorted(obs.frames_dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        docs = {
            "mqtt_sent": "MQTT messages published",
            "mqtt_dropped": "MQTT alarm changes, balancing changes and events dropped while the "
            "broker was away (queue bound)",
            "mqtt_reconnects": "MQTT reconnect attempts",
            "sparkplug_births": "Sparkplug NBIRTHs published (connects and rebirths)",
            "sparkplug_data": "Sparkplug DDATA messages published",
        }
        for key, n in sorted(obs.outputs.items()):
            yield CounterMetricFamily(f"bms_{key}", docs.get(key, key), n)

    @staticmethod
    def _charge(out: ControlOutput) -> Iterator[Metric]:
        """The charge phase and the full-charge request (absent without a charge state)."""
        c = out.charge
        if c is None:
            return
        yield StateSetMetricFamily(
            "bms_charge_phase", "Charge phase", value={p.value: c.phase is p for p in ChargePhase}
        )
        yield GaugeMetricFamily(
            "bms_full_charge_requested", "1 while a full charge is requested",
            value=1.0 if c.full_charge_requested else 0.0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "bms_grid_charge_requested", "1 while a full charge asks to charge from the grid",
            value=1.0 if c.grid_charge_requested else 0.0,
        )  # fmt: skip
        if _ok(c.full_charge_due_in_s):
            yield GaugeMetricFamily(
                "bms_full_charge_due_in_seconds",
                "Time until a requested full charge is due (0: due now; absent: none requested)",
                value=c.full_charge_due_in_s,
            )
        yield GaugeMetricFamily(
            "bms_charge_phase_elapsed_seconds", "Time in the current charge phase",
            value=max(0.0, out.t_s - c.since_s),
        )  # fmt: skip

    @staticmethod
    def _pack(out: ControlOutput) -> Iterator[Metric]:
        p = out.pack
        gauges: list[tuple[str, str, float | None]] = [
            ("bms_pack_voltage_volts", "Measured pack voltage", p.pack_voltage_v),
            ("bms_pack_current_amperes", "Pack current (positive = charging)", p.current_a),
            ("bms_cell_voltage_min_volts", "Lowest cell voltage", p.min_cell_v),
            ("bms_cell_voltage_max_volts", "Highest cell voltage", p.max_cell_v),
            ("bms_balancing_cells", "Cells commanded to bleed", float(sum(out.balancing.bleed))),
        ]
        if p.pack_voltage_v is not None and p.current_a is not None:
            gauges.append(
                ("bms_pack_power_watts", "Pack power (positive = charging)",
                 p.pack_voltage_v * p.current_a)
            )  # fmt: skip
        if out.soc is not None:
            gauges += [
                ("bms_pack_soc_ratio", "Pack state of charge (blended), 0..1",
                 out.soc.soc_pct / 100.0),
                ("bms_pack_soc_mean_ratio", "Mean cell state of charge, 0..1",
                 out.soc.soc_mean_pct / 100.0),
                ("bms_pack_soh_ratio", "State of health of the weakest cell, 0..1",
                 out.soc.soh_pct / 100.0),
            ]  # fmt: skip
        for name, doc, value in gauges:
            if _ok(value):
                yield GaugeMetricFamily(name, doc, value=value)
        if out.energy is not None:
            yield CounterMetricFamily(
                "bms_pack_charged_energy_joules", "Energy charged into the pack",
                out.energy.charged_kwh * 3.6e6,
            )  # fmt: skip
            yield CounterMetricFamily(
                "bms_pack_discharged_energy_joules", "Energy discharged from the pack",
                out.energy.discharged_kwh * 3.6e6,
            )  # fmt: skip

    @staticmethod
    def _cells(out: ControlOutput) -> Iterator[Metric]:
        p = out.pack
        volts = GaugeMetricFamily("bms_cell_voltage_volts", "Cell voltage", labels=["cell"])
        for i, v in enumerate(p.cell_voltage_v):
            if _ok(v):
                volts.add_metric([str(i + 1)], v)  # type: ignore[arg-type]
        yield volts
        temps = GaugeMetricFamily(
            "bms_sensor_temperature_celsius", "Temperature sensor reading", labels=["sensor"]
        )
        for i, t in enumerate(p.cell_temp_c):
            if _ok(t):
                temps.add_metric([str(i + 1)], t)  # type: ignore[arg-type]
        yield temps
        bleed = GaugeMetricFamily(
            "bms_cell_balancing", "1 when the cell is commanded to bleed", labels=["cell"]
        )
        for i, on in enumerate(out.balancing.bleed):
            bleed.add_metric([str(i + 1)], 1.0 if on else 0.0)
        yield bleed
        if out.soc is not None:
            soc = GaugeMetricFamily(
                "bms_cell_soc_ratio", "Cell state of charge, 0..1", labels=["cell"]
            )
            for i, c in enumerate(out.soc.cells):
                if _ok(c.soc_pct):
                    soc.add_metric([str(i + 1)], c.soc_pct / 100.0)
            yield soc

    @staticmethod
    def _limits(out: ControlOutput) -> Iterator[Metric]:
        pairs: list[tuple[str, str, str, Limit]] = [
            ("amperes", "current", "ccl", out.limits.ccl_a),
            ("amperes", "current", "dcl", out.limits.dcl_a),
            ("volts", "voltage", "cvl", out.limits.cvl_v),
            ("volts", "voltage", "dvl", out.limits.dvl_v),
        ]
        for unit, kind in (("amperes", "current"), ("volts", "voltage")):
            value = GaugeMetricFamily(
                f"bms_{kind}_limit_{unit}",
                f"{kind.capitalize()} limit in force; winner is the term that decided it",
                labels=["limit", "winner"],
            )
            terms = GaugeMetricFamily(
                f"bms_{kind}_limit_term_{unit}",
                f"Every term the {kind} limit is chosen from",
                labels=["limit", "term"],
            )
            for u, _, name, lim in pairs:
                if u != unit:
                    continue
                if _ok(lim.value):
                    value.add_metric([name, lim.winner], lim.value)
                for t in lim.terms:
                    if _ok(t.value):
                        terms.add_metric([name, t.name], t.value)
            yield value
            yield terms

    @staticmethod
    def _alarms(out: ControlOutput) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "bms_alarm_level", "Worst active severity: 0 ok, 1 warning, 2 alarm",
            value=float(int(out.alarms.worst)),
        )  # fmt: skip
        active = GaugeMetricFamily(
            "bms_alarm_active",
            "1 for each active warning or alarm",
            labels=["code", "severity", "latched"],
        )
        for a in out.alarms.active:
            active.add_metric(
                [a.code, a.severity.name.lower(), "true" if a.latched else "false"], 1.0
            )
        yield active


class GatewayMetrics:
    """A registry of its own (no process-global state) with the gateway's metrics.

    Args:
        source: returns what a scrape reports (called once per scrape, in the event loop).
    """

    def __init__(self, source: Callable[[], Observed]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.step_duration = Histogram(
            "bms_control_step_duration_seconds",
            "Duration of one control step (decode excluded)",
            buckets=STEP_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_Collector(source))

    def observe_step(self, duration_s: float) -> None:
        """Record one control step's duration."""
        self.step_duration.observe(duration_s)

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
