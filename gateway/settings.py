"""One typed settings tree, read once at start from a TOML file and the environment.

Precedence: environment (``BMSGW_SECTION__KEY``) over the TOML file over defaults. Unknown keys,
in the file or in ``BMSGW_`` variables, are errors that name the key. Each section is defined next
to the code it configures; this module only assembles them. Deprecated keys (:data:`DEPRECATED`)
are still accepted for one release; :func:`load_settings` words a warning for each one set
(``Settings.deprecations``), naming the file or variable and the keys that replace it.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from gateway.canbus.config import CanConfig
from gateway.core.balancing import BalancingConfig
from gateway.core.config import Section
from gateway.core.freshness import BALANCING_KEYS, SOC_KEYS, TimeoutsConfig
from gateway.core.health import HealthConfig
from gateway.core.limits import LimitsConfig
from gateway.core.pack import PackConfig
from gateway.core.phases import ChargeConfig
from gateway.core.plausibility import PlausibilityConfig
from gateway.core.protection import ProtectionConfig
from gateway.core.soc import SocConfig
from gateway.errors import ConfigError
from gateway.inverter_can.config import InverterCanConfig
from gateway.mqtt.config import MqttConfig
from gateway.settings_checks import check_across_sections
from gateway.settings_checks import notices as setting_notices
from gateway.settings_source import Origin
from gateway.sparkplug.config import SparkplugConfig
from gateway.sunspec.config import SunSpecConfig
from gateway.update.config import UpdateConfig
from gateway.web.config import WebConfig

__all__ = [
    "DEPRECATED",
    "ENV_PREFIX",
    "RETIRED",
    "ControlConfig",
    "Deprecated",
    "LogConfig",
    "Settings",
    "StateConfig",
    "load_settings",
]

ENV_PREFIX = "BMSGW_"


@dataclass(frozen=True, slots=True)
class Deprecated:
    """A key still accepted for one release and the ``timeouts`` keys that replace it.

    While none of ``new`` is set, the old key works as before (one age for both inputs of its
    consumer) and a warning names the new keys; once one of them is set, the new keys win and
    the old key is ignored with a warning.
    """

    key: str
    """The old key, ``section.name``."""
    new: tuple[str, ...]
    """The keys of the ``timeouts`` section that replace it (names within the section)."""
    uses: str
    """What its consumer does with the two ages it reads (``{0}``, ``{1}``, in s)."""
    rule: str
    """How its consumer reads the new keys (docs/CONFIG.md)."""

    def ages_s(self, settings: Settings) -> tuple[float, float]:
        """The two ages its consumer uses under ``settings``, in s."""
        section, name = self.key.split(".")
        old = getattr(getattr(settings, section), name)
        if section == "soc":
            return settings.timeouts.soc_ages_s(old)
        return settings.timeouts.balancing_ages_s(old)


DEPRECATED = (
    Deprecated(
        "soc.stale_s",
        SOC_KEYS,
        "the SoC estimator uses cell voltages up to {0:g} s old and a current up to {1:g} s old",
        "a cell voltage up to `cell_voltage_timeout_s` old; a current up to the longer of "
        "`current_timeout_s` and `cell_voltage_timeout_s` (5 s under defaults, as before)",
    ),
    Deprecated(
        "balancing.max_data_age_s",
        BALANCING_KEYS,
        "balancing stops while a cell voltage is older than {0:g} s or a temperature older "
        "than {1:g} s",
        "stops while a cell voltage is older than `cell_voltage_timeout_s` or a temperature "
        "older than the shorter of `temperature_timeout_s` and `cell_voltage_timeout_s` (5 s "
        "under defaults, as before)",
    ),
)
"""Deprecated keys, accepted until the next release (docs/CONFIG.md lists them)."""

RETIRED: tuple[tuple[str, str], ...] = (
    (
        "soc.full_voltage_margin_v",
        "a tapered charge is a trusted top where its voltage pins the SoC on the OCV table, at "
        "any charge voltage (soc.full_current_c)",
    ),
)
"""Keys no longer used, ``(section.name, why)``: still accepted until the next release (a file
that sets one loads), with a warning naming where it was set."""


class ControlConfig(Section):
    """The control loop."""

    tick_s: float = Field(default=0.1, ge=0.001, le=10)
    """Control step interval when no new data arrives (a step also runs on every new frame)."""
    min_step_s: float = Field(default=0.002, ge=0, le=1)
    """Shortest interval between data-driven steps (bounds CPU under heavy CAN traffic)."""
    gateway_id: str = Field(default="bms1", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Name of this gateway in MQTT topics and reports."""


class StateConfig(Section):
    """Persisted estimator state."""

    path: str = "state/estimator.json"
    """State file (systemd: under StateDirectory, e.g. /var/lib/bms-gateway/estimator.json)."""
    interval_s: float = Field(default=60.0, gt=0, le=86_400)
    """How often the state is written (it is also written on stop)."""


class LogConfig(Section):
    """Logging."""

    level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    """Log level: DEBUG, INFO, WARNING or ERROR."""


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    pack: PackConfig = PackConfig()
    can: CanConfig = CanConfig()
    control: ControlConfig = ControlConfig()
    soc: SocConfig = SocConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    plausibility: PlausibilityConfig = PlausibilityConfig()
    protection: ProtectionConfig = ProtectionConfig()
    limits: LimitsConfig = LimitsConfig()
    balancing: BalancingConfig = BalancingConfig()
    charge: ChargeConfig = ChargeConfig()
    sunspec: SunSpecConfig = SunSpecConfig()
    inverter_can: InverterCanConfig = InverterCanConfig()
    mqtt: MqttConfig = MqttConfig()
    web: WebConfig = WebConfig()
    sparkplug: SparkplugConfig = SparkplugConfig()
    state: StateConfig = StateConfig()
    health: HealthConfig = HealthConfig()
    update: UpdateConfig = UpdateConfig()
    log: LogConfig = LogConfig()

    _deprecations: tuple[str, ...] = PrivateAttr(default=())
    _origin: Origin | None = PrivateAttr(default=None)

    @property
    def deprecations(self) -> tuple[str, ...]:
        """One warning per deprecated key that is set (filled by :func:`load_settings`)."""
        return self._deprecations

    @property
    def notices(self) -> tuple[str, ...]:
        """One warning per setting that loads but has no effect or an unusual one
        (``settings_checks.notices``), behind where its keys were set."""
        return tuple(self.origin.label(n) for n in setting_notices(self))

    @property
    def origin(self) -> Origin:
        """Where these settings came from (filled by :func:`load_settings`): its
        :meth:`~Origin.label` puts the file or variable in front of a config error found after
        loading, as :func:`load_settings` does for its own."""
        return self._origin or Origin(Settings, ENV_PREFIX)

    @model_validator(mode="after")
    def _check_across_sections(self) -> Settings:
        """Checks that need two sections; each error names both keys
        (``gateway.settings_checks``)."""
        check_across_sections(self)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first (wins), then the TOML file passed as init values."""
        return (env_settings, init_settings)


def _nearest(name: str, model: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest field of ``model`` to ``name``, else ``""``."""
    fields = getattr(model, "model_fields", None) or {}
    close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(path: Sequence[str | int]) -> Any:
    """The settings model that holds the key at ``path`` (its last part), or ``None``."""
    model: Any = Settings
    for part in path[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        model = fields[part].annotation
    return model


def _check_env_keys(env: Mapping[str, str]) -> None:
    """Reject ``BMSGW_`` variables that name no setting (pydantic-settings ignores them)."""
    for name in env:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        model: Any = Settings
        for part in path:
            fields = getattr(model, "model_fields", None)
            if fields is None or part not in fields:
                hint = _nearest(part, model) if fields is not None else ""
                raise ConfigError(f"environment {name}: unknown setting {'.'.join(path)!r}{hint}")
            model = fields[part].annotation


def _format_error(e: ValidationError, origin: Origin) -> str:
    """One line for the first error: where it was set (``origin``), the key, the value, why."""
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    # A section's own check (loc: the section) names its keys without the section.
    section = str(err["loc"][0]) if len(err["loc"]) == 1 else None
    msg = err["msg"]
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    if err["type"] == "value_error":
        # Our own checks name their keys (``protection.a (=1) must be below protection.b``).
        msg = msg.removeprefix("Value error, ")
        if not key or msg.startswith((f"{key}.", f"{key} ")):
            return f"{origin.of(msg, section)}: {msg}{more}"
    if err["type"] == "extra_forbidden":  # unknown variables are refused before this
        msg = "unknown setting" + _nearest(str(err["loc"][-1]), _model_at(err["loc"]))
        where = str(origin.path) if origin.path is not None else origin.overall()
        return f"{where}: {key}: {msg}{more}"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (={value!r})"
    return f"{origin.of(f'{key}: {msg}', section)}: {key}{shown}: {msg}{more}"


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings from ``path`` (TOML, optional) and the ``BMSGW_`` environment.

    Raises:
        ConfigError: one line naming the file or variable, the bad key and why.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    _check_env_keys(os.environ)
    env_names = frozenset(k.upper() for k in os.environ if k.upper().startswith(ENV_PREFIX))
    origin = Origin(Settings, ENV_PREFIX, path, data, env_names)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, origin)) from None
    except SettingsError as e:
        raise ConfigError(_env_parse_error(e, os.environ)) from None
    settings._deprecations = _deprecation_warnings(settings, data, path, os.environ)
    settings._origin = origin
    return settings


def _env_parse_error(e: SettingsError, env: Mapping[str, str]) -> str:
    """One line for a ``BMSGW_`` variable pydantic-settings could not parse, naming it.

    pydantic-settings parses a list or table value as JSON
    (``BMSGW_BALANCING__PASSIVE_STATES='["rest", "top"]'``); its error names only the section.
    """
    m = re.search(r'field "(\w+)"', str(e))
    section = m.group(1).upper() if m else ""
    names = sorted(k for k in env if k.upper().startswith(f"{ENV_PREFIX}{section}__"))
    which = ", ".join(names) if names and section else "a BMSGW_ variable"
    return (
        f"environment: {which}: cannot be parsed (a list or table value must be JSON, e.g."
        ' \'["rest", "top"]\')'
    )


def _deprecation_warnings(
    settings: Settings, data: Mapping[str, Any], path: Path | None, env: Mapping[str, str]
) -> tuple[str, ...]:
    """A warning for each deprecated key that is set, naming where it was set and what wins."""
    out: list[str] = []
    env_names = {name.upper() for name in env}
    for dep in DEPRECATED:
        section, name = dep.key.split(".")
        value = getattr(getattr(settings, section), name)
        if value is None:
            continue
        var = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
        in_file = path is not None and name in (data.get(section) or {})
        origin = str(path) if in_file and var not in env_names else f"environment {var}"
        uses = dep.uses.format(*dep.ages_s(settings))
        set_new = [f"timeouts.{k}" for k in dep.new if settings.timeouts.any_set((k,))]
        if set_new:
            out.append(
                f"{origin}: {dep.key} (={value:g}) is deprecated and ignored: "
                f"{' and '.join(set_new)} {'is' if len(set_new) == 1 else 'are'} set and the new "
                f"keys win ({uses}); remove {dep.key}"
            )
        else:
            new = " and ".join(f"timeouts.{k}" for k in dep.new)
            out.append(
                f"{origin}: {dep.key} is deprecated and will be removed in the next release; "
                f"until then it is in force ({uses}). Set {new} instead (they also time out "
                "the fail-safe and the stale_data alarm)"
            )
    for key, why in RETIRED:
        section, name = key.split(".")
        var = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
        in_file = path is not None and name in (data.get(section) or {})
        if var in env_names or in_file:
            origin = f"environment {var}" if var in env_names else str(path)
            out.append(
                f"{origin}: {key} is no longer used ({why}) and will be removed in the next "
                "release; remove it"
            )
    return tuple(out)
