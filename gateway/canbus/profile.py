"""Signal-map profiles: TOML files that bind DBC signals to the gateway's roles.

A profile says which DBC signal carries which :class:`~gateway.core.model.Role`, how to find the
cell index, how to convert the unit and sign, and which flag marks a value invalid. It never
repeats a bit position: the DBC stays the only wire definition. The format is documented in
``dbc/README.md``; this module only parses and validates it (no DBC needed yet).
"""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from gateway.core.model import Role
from gateway.errors import ConfigError

__all__ = ["CommandMap", "NamePattern", "Profile", "SignalMap", "load_profile"]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _as_int_list(value: object) -> object:
    return [value] if isinstance(value, int) else value


class NamePattern:
    """A signal name, optionally with one ``{index}`` field (``CellVoltage_{index:03d}``).

    ``match(name)`` returns the index a name encodes (or ``None``); ``format(i)`` builds the name
    back. A name only matches when formatting its index reproduces it exactly, so ``{index:03d}``
    does not match ``CellVoltage_7`` and the pattern stays unambiguous.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts = list(string.Formatter().parse(pattern))
        fields = [f for _, f, _, _ in parts if f is not None]
        if any(f != "index" for f in fields) or len(fields) > 1:
            raise ValueError(
                f"pattern {pattern!r} may hold one field, {{index}} or {{index:03d}}, "
                f"not {', '.join(repr(f) for f in fields)}"
            )
        self.indexed = bool(fields)
        regex = "".join(re.escape(lit) + ("" if f is None else r"(\d+)") for lit, f, _, _ in parts)
        self._regex = re.compile(regex)
        if self.indexed:
            pattern.format(index=0)  # rejects a bad format spec now, not at first use

    def match(self, name: str) -> int | None:
        """The index encoded in ``name``, or ``None`` when it does not fit the pattern."""
        if not self.indexed:
            return 0 if name == self.pattern else None
        m = self._regex.fullmatch(name)
        if m is None:
            return None
        index = int(m.group(1))
        return index if self.pattern.format(index=index) == name else None

    def format(self, index: int) -> str:
        """The name for ``index`` (the pattern itself when it has no field)."""
        return self.pattern.format(index=index) if self.indexed else self.pattern

    def __repr__(self) -> str:
        return repr(self.pattern)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalMap(_Model):
    """One binding: a DBC signal (or a family of them) to a role."""

    role: Role
    """What the value means: ``cell_voltage``, ``cell_temperature``, ``pack_current``..."""
    message: str = Field(min_length=1)
    """DBC message name."""
    signal: str = Field(min_length=1)
    """Signal name, or a pattern whose ``{index}`` field is the cell/sensor number."""
    index_signal: str | None = None
    """Another signal of the same frame whose value is the index (``CellId``)."""
    index_offset: int = 0
    """Added to the index (``-1`` when the BMS counts cells from 1; the fixed index otherwise)."""
    scale: float = 1.0
    """Multiplies the DBC's physical value into the role's SI unit (``0.001`` for mV to V)."""
    value_offset: float = 0.0
    """Added after scaling (``-273.15`` for kelvin to degrees C)."""
    flip_sign: bool = False
    """Negate the value (shunts that count discharge as positive)."""
    invalid_flag: Annotated[list[str], BeforeValidator(_as_list)] = []
    """Flag signal(s), same pattern rules as ``signal``; any at ``invalid_value`` marks invalid."""
    invalid_value: int = 1
    """The raw flag value that means invalid (``0`` where the DBC says ``0 = Invalid``)."""
    sentinel: Annotated[list[int], BeforeValidator(_as_int_list)] = []
    """Raw values that mean "no measurement" (``[0xFFFF, 0x0000]``); such a reading is a
    measurement fault (0 A, ``measurement_fault``), never a value."""
    all_ones_sentinel: bool = True
    """Treat the all-ones raw value of an unsigned integer signal of 8 bits or more as a sentinel
    (``0xFF`` read as 215 degC, ``0xFFFF`` as 65.535 V). Not applied to ``balancing_status``."""

    @field_validator("signal", "index_signal")
    @classmethod
    def _pattern_ok(cls, value: str | None) -> str | None:
        if value is not None:
            NamePattern(value)
        return value

    @field_validator("invalid_flag")
    @classmethod
    def _flags_ok(cls, value: list[str]) -> list[str]:
        for flag in value:
            NamePattern(flag)
        return value

    @field_validator("scale")
    @classmethod
    def _scale_ok(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


class CommandMap(_Model):
    """An outbound per-cell flag message (the balancing command)."""

    message: str = Field(min_length=1)
    """DBC message name."""
    signal: str = Field(min_length=1)
    """Flag signal pattern with an ``{index}`` field (``BalancingCommand_{index:03d}``)."""
    index_offset: int = 0
    """Cell index = the number in the signal name + ``index_offset``."""

    @field_validator("signal")
    @classmethod
    def _pattern_ok(cls, value: str) -> str:
        if not NamePattern(value).indexed:
            raise ValueError(f"pattern {value!r} needs an {{index}} field")
        return value


class Profile(_Model):
    """A whole signal map."""

    name: str = Field(min_length=1)
    """Short name (``bms``, ``foxbms``)."""
    description: str = ""
    """One line for humans."""
    dbc: list[str] = []
    """DBC files this profile was written for, relative to the profile file (optional)."""
    signals: list[SignalMap] = Field(min_length=1)
    """The bindings."""
    balancing_command: CommandMap | None = None
    """Where the gateway's balancing decision goes out (none: not sent)."""
    source: str = ""
    """The file the profile was read from (filled by ``load_profile``)."""

    def dbc_paths(self) -> list[Path]:
        """The profile's own DBC files, resolved against the profile's directory."""
        base = Path(self.source).parent
        return [(base / p).resolve() for p in self.dbc]


def _format_error(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{key}: {msg}{more}"


def load_profile(path: Path) -> Profile:
    """Read and validate a profile file.

    Raises:
        ConfigError: one line naming the file and the bad key.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"profile {path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"profile {path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"profile {path}: not UTF-8 text: {e.reason}") from None
    try:
        return Profile.model_validate({**data, "source": str(path)})
    except ValidationError as e:
        raise ConfigError(f"profile {path}: {_format_error(e)}") from None
