"""Versioned JSON payloads of the MQTT topics, built from a ``ControlOutput``. Pure: no I/O.

Every payload carries ``"v": SCHEMA_VERSION``. Adding a field keeps the version; renaming or
removing one, or changing a unit or meaning, bumps it. Floats that are unknown (or not finite)
are ``null``, never a made-up number. docs/MQTT.md is the reference.

The builders take ``time_s`` (Unix wall-clock seconds) from the caller so that this module never
reads a clock; ``t_s`` in the payloads is the control loop's monotonic time.

One module per topic: ``state``, ``cells``, ``alarms``, ``balancing``, ``events`` (with the
command replies); ``common`` holds the envelope and the rounding. Everything public is
re-exported here, so ``from gateway.mqtt.payloads import state_payload`` is the way in.
"""

from gateway.mqtt.payloads.alarms import (
    AlarmItem,
    AlarmsPayload,
    alarms_key,
    alarms_payload,
    alarms_payload_of,
)
from gateway.mqtt.payloads.balancing import (
    BalancingActionItem,
    BalancingPayload,
    balancing_key,
    balancing_payload,
    balancing_payload_of,
)
from gateway.mqtt.payloads.cells import CellsPayload, cells_payload
from gateway.mqtt.payloads.common import SCHEMA_VERSION
from gateway.mqtt.payloads.events import (
    CommandResultPayload,
    EventPayload,
    command_result_payload,
    event_payload,
)
from gateway.mqtt.payloads.state import (
    ChargePayload,
    LimitPayload,
    NegotiationPayload,
    RequestsPayload,
    StatePayload,
    state_payload,
)

__all__ = [
    "SCHEMA_VERSION",
    "AlarmItem",
    "AlarmsPayload",
    "BalancingActionItem",
    "BalancingPayload",
    "CellsPayload",
    "ChargePayload",
    "CommandResultPayload",
    "EventPayload",
    "LimitPayload",
    "NegotiationPayload",
    "RequestsPayload",
    "StatePayload",
    "alarms_key",
    "alarms_payload",
    "alarms_payload_of",
    "balancing_key",
    "balancing_payload",
    "balancing_payload_of",
    "cells_payload",
    "command_result_payload",
    "event_payload",
    "state_payload",
]
