"""Value types shared by the core and the adapters.

Every quantity carries its unit in its name (``voltage_v``, ``current_a``, ``temp_c``). Times are
monotonic seconds (``t_s``, ``now_s``) injected by the caller; nothing here reads a clock.

The enums (roles, modes, kinds, link states) are in :mod:`gateway.core.kinds` and the commands
from outside in :mod:`gateway.core.commands`; both are importable from here.

Sign convention: pack current is positive when the pack is **charging** (current into the pack),
negative when discharging. Adapters convert at the edge (a signal map may flip the sign).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.cells import extremes
from gateway.core.commands import (
    Command,
    CommandResult,
    RequestHealthReport,
    ResetAlarms,
    SetBalancingMode,
    SetUserCurrentCap,
)
from gateway.core.kinds import (
    BalancingMode,
    CellAction,
    ChargePhase,
    GatewayMode,
    InverterLink,
    Role,
    Severity,
    StaleKind,
    TermKind,
)

__all__ = [
    "Alarm",
    "AlarmReport",
    "BalancingAction",
    "BalancingMode",
    "BalancingPlan",
    "BatteryRequests",
    "CellAction",
    "CellEstimate",
    "ChargePhase",
    "ChargeState",
    "Command",
    "CommandResult",
    "ControlOutput",
    "EnergyReport",
    "GatewayMode",
    "InverterLink",
    "Limit",
    "LimitTerm",
    "Limits",
    "MeasurementFault",
    "Negotiation",
    "PackSnapshot",
    "Reading",
    "RequestHealthReport",
    "ResetAlarms",
    "Role",
    "SetBalancingMode",
    "SetUserCurrentCap",
    "Severity",
    "SocReport",
    "StaleKind",
    "TermKind",
]


@dataclass(slots=True)
class Reading:
    """One decoded value, in SI units, with its receive time. Read-only by convention.

    Not frozen: one is built per decoded signal (about 6,000 a second for a 512-cell pack), and a
    frozen dataclass costs three times as much to build (bench/ingest.py).
    """

    role: Role
    index: int
    value: float
    t_s: float
    valid: bool = True


@dataclass(frozen=True, slots=True)
class MeasurementFault:
    """A reading no healthy cell or sensor can show (``gateway.core.plausibility``).

    ``input`` is the input group (``cell_voltage``, ``temperature``, ``current``,
    ``pack_voltage``), ``index`` the cell or sensor (``None`` for single values), ``value`` what
    was read (NaN for a sentinel), ``why`` one phrase for users.
    """

    input: str
    index: int | None
    value: float
    why: str

    @property
    def name(self) -> str:
        """A stable name: ``cell_voltage[3]`` (cell 3, index 2: numbers a person reads count
        from 1), ``current``."""
        return self.input if self.index is None else f"{self.input}[{self.index + 1}]"


@dataclass(frozen=True, slots=True)
class PackSnapshot:
    """The pack as last seen, at ``t_s``. ``None`` means unknown: never seen, last seen invalid
    or implausible, or older than its timeout (a stale value is never shown as if live).

    Ages are ``t_s`` minus the receive time of the value; ``None`` when never seen.
    ``faults`` lists the inputs whose last reading was implausible.
    """

    t_s: float
    cell_voltage_v: tuple[float | None, ...]
    cell_voltage_age_s: tuple[float | None, ...]
    cell_temp_c: tuple[float | None, ...]
    cell_temp_age_s: tuple[float | None, ...]
    current_a: float | None
    current_age_s: float | None
    pack_voltage_v: float | None
    pack_voltage_age_s: float | None
    balancing_active: tuple[bool, ...]
    complete: bool  # every configured cell voltage, sensor, current and voltage seen and valid
    frames: int = 0  # frames decoded so far (for reports)
    errors: int = 0  # frames dropped so far
    faults: tuple[MeasurementFault, ...] = ()  # implausible readings in force
    # The highest cell and sensor numbers (from 1) seen beyond the configured counts within their
    # timeouts (0: none): the BMS has more cells or sensors than ``[pack]`` says.
    extra_cell_number: int = 0
    extra_sensor_number: int = 0

    @property
    def cell_count(self) -> int:
        """Number of configured series cells."""
        return len(self.cell_voltage_v)

    @property
    def max_cell_v(self) -> float | None:
        """Highest known cell voltage."""
        ext = extremes(self.cell_voltage_v)
        return ext[2] if ext is not None else None

    @property
    def min_cell_v(self) -> float | None:
        """Lowest known cell voltage."""
        ext = extremes(self.cell_voltage_v)
        return ext[0] if ext is not None else None


# --- state estimation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellEstimate:
    """Estimator output for one cell."""

    soc_pct: float
    soc_sigma_pct: float  # one standard deviation of the SoC estimate
    capacity_ah: float
    resistance_mohm: float
    # One standard deviation of this cell's SoC against the other cells of the string (the
    # count's common errors cancel in differences); what balancing weighs a cell's excess
    # against. NaN: not known (use ``soc_sigma_pct``).
    soc_rel_sigma_pct: float = float("nan")
    # One standard deviation of ``capacity_ah``. NaN: not known.
    capacity_sigma_ah: float = float("nan")
    # The RC pair identified online (R1 referred to 25 degC, and its time constant). NaN: not
    # known.
    r1_mohm: float = float("nan")
    tau1_s: float = float("nan")


@dataclass(frozen=True, slots=True)
class SocReport:
    """Pack state of charge and health."""

    soc_pct: float  # blended: 100 = no cell can take more, 0 = one cell is empty
    soc_mean_pct: float
    soh_pct: float  # capacity of the weakest cell against nominal
    cells: tuple[CellEstimate, ...]


# --- protection -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alarm:
    """One active warning or alarm. ``code`` is the stable MQTT name (``cell_overvoltage``)."""

    code: str
    severity: Severity
    message: str
    since_s: float
    latched: bool = False
    warning_too: bool = False  # ALARM severity: its warning level is active as well


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """Every active warning and alarm after one step."""

    active: tuple[Alarm, ...] = ()

    @property
    def worst(self) -> Severity:
        """Worst severity among active alarms."""
        return max((a.severity for a in self.active), default=Severity.OK)

    def has(self, code: str, severity: Severity = Severity.WARNING) -> bool:
        """Whether ``code`` is active at ``severity`` or worse."""
        return any(a.code == code and a.severity >= severity for a in self.active)


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitTerm:
    """One candidate value of a limit, named so users can see why they are limited.

    ``kind`` says what the term stands for; the ``name`` is what users read (payloads, records).
    """

    name: str
    value: float
    kind: TermKind = TermKind.DERATING


@dataclass(frozen=True, slots=True)
class Limit:
    """A limit and the terms it was chosen from; ``winner`` names the term that decided it.

    CCL, DCL and CVL are the minimum of their terms (after ramping); DVL, a lower bound, is the
    maximum of its terms.
    """

    value: float
    winner: str
    terms: tuple[LimitTerm, ...]
    winner_kind: TermKind = TermKind.DERATING
    """The kind of the winning term."""

    def term(self, name: str) -> float | None:
        """The value of term ``name``, or ``None`` when absent."""
        return next((t.value for t in self.terms if t.name == name), None)


@dataclass(frozen=True, slots=True)
class Limits:
    """Charge and discharge current limits (A, >= 0) and the voltage window (V)."""

    ccl_a: Limit
    dcl_a: Limit
    cvl_v: Limit
    dvl_v: Limit


# --- balancing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalancingAction:
    """What happens to one cell: bleed (passive), donate or receive (active), or blocked."""

    cell: int
    mode: BalancingMode
    action: CellAction
    reason: str
    current_a: float
    charge_ah: float  # moved (active) or dissipated (passive) since the action started


@dataclass(frozen=True, slots=True)
class BalancingPlan:
    """The balancing decision of one step; ``bleed`` is what goes out on CAN."""

    mode: BalancingMode
    bleed: tuple[bool, ...]
    actions: tuple[BalancingAction, ...] = ()
    idle_reason: str = ""


# --- charge phases --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeState:
    """The charge phase of one step, why it is in it, and what it asks of the inverter."""

    phase: ChargePhase
    reason: str  # why the last transition happened ("start" before the first)
    since_s: float  # monotonic time of the last transition
    cvl_v: float  # the phase's charge voltage (a CVL term named after the phase)
    full_charge_requested: bool
    full_charge_reason: str  # empty when none is requested
    grid_charge_requested: bool  # a requested full charge may and should draw from the grid
    last_full_age_s: float | None  # seconds since the last completed full charge (None: never)
    # Seconds until a requested full charge is due (0: due now; None: none requested): it may
    # wait for the end of the daily PV charge (``charge.full_charge_lead_s``).
    full_charge_due_in_s: float | None = None


# --- what the battery asks of the inverter ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatteryRequests:
    """The battery's requests to the inverter after one step (rules: ``core.requests``)."""

    charge_enable: bool
    discharge_enable: bool
    force_charge: bool
    full_charge: bool


# --- inverter negotiation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What was negotiated with the inverter. Amperes; ``None`` where unknown."""

    link: InverterLink
    connected: bool
    requested_ccl_a: float
    requested_dcl_a: float
    accepted_ccl_a: float | None = None
    accepted_dcl_a: float | None = None
    inverter_max_charge_a: float | None = None
    inverter_max_discharge_a: float | None = None
    # Why the link itself publishes 0 A ("controller_heartbeat_lost", "setop_disconnect");
    # the limits carry it as a fault term so the return goes through the ramp. None: no hold.
    link_hold: str | None = None
    # Battery CAN: the inverter's keep-alive (or poll) heard within its timeout; None: the link
    # has no keep-alive, or it was never heard.
    keepalive: bool | None = None

    @property
    def effective_ccl_a(self) -> float:
        """The charge limit actually in force: the smaller of ours and the inverter's."""
        if self.accepted_ccl_a is None:
            return self.requested_ccl_a
        return min(self.requested_ccl_a, self.accepted_ccl_a)

    @property
    def effective_dcl_a(self) -> float:
        """The discharge limit actually in force."""
        if self.accepted_dcl_a is None:
            return self.requested_dcl_a
        return min(self.requested_dcl_a, self.accepted_dcl_a)


# --- energy ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnergyReport:
    """Energy counted into and out of the pack since it was first seen (kWh, never decreasing)."""

    charged_kwh: float
    discharged_kwh: float


# --- the whole step -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlOutput:
    """Everything one control step decided. Outputs read the latest one; it is never mutated."""

    seq: int
    t_s: float
    pack: PackSnapshot
    soc: SocReport | None
    alarms: AlarmReport
    limits: Limits
    balancing: BalancingPlan
    negotiation: Negotiation | None = None
    charge: ChargeState | None = None
    mode: GatewayMode = GatewayMode.STARTING
    notes: tuple[str, ...] = field(default=())
    energy: EnergyReport | None = None  # None: not counted (a step built outside Controller)
    requests: BatteryRequests | None = None  # enable flags, force/full charge (core.requests)
