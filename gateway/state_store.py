"""Files the core needs: the persisted state (atomic) and a user's OCV table.

The state file holds the estimator state (``"state"``) and, beside it, the safety state
(``"safety"``: latched alarms, user current caps, balancing mode and pauses; see
``Controller.export_safety``), so a crash and a restart by systemd never silently clear a latched
cell over-voltage. The core is pure; this module does its I/O. ``save_state`` writes a temporary
file in the target's directory, fsyncs it, renames it over the target and fsyncs the directory,
so a crash or power cut leaves either the old file or the new one, never half of one; the
temporary files a kill leaves behind are removed by ``remove_orphans`` at the next start.
``load_document`` (and ``load_state`` for the estimator part) return ``None`` parts (and log why)
for a missing, unreadable or corrupt file; the caller then starts from OCV with no latch.
Whether the state fits this pack is ``SocEstimator.restore``'s call (it raises ``ValueError``),
see ``restore_estimator``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.chemistry import Chemistry, OcvTable, get_chemistry
from gateway.core.ocv_file import OcvTableFormat, parse_ocv_table
from gateway.core.phases_state import finite_number
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.core.pack import PackConfig
    from gateway.core.soc import SocConfig, SocEstimator

__all__ = [
    "OCV_BELOW_CVL_MAX_V",
    "OCV_TABLE_MAX_BYTES",
    "StateDocument",
    "check_ocv_table_fits",
    "describe_ocv_table",
    "load_document",
    "load_ocv_table",
    "load_state",
    "read_ocv_table",
    "remove_orphans",
    "resolve_chemistry",
    "restore_estimator",
    "save_state",
]

log = logging.getLogger(__name__)

_MAGIC = "bms-gateway-estimator-state"

OCV_TABLE_MAX_BYTES = 1024 * 1024
"""Most bytes read of a user OCV table (``soc.ocv_table``); a real one is a few KiB."""
OCV_BELOW_CVL_MAX_V = 0.5
"""Most a user table's OCV at 100 % may lie below the charge voltage (``limits.cvl_cell_v``):
the same chemistry's full OCV lies within about 0.2 V of it, another's (LFP under NMC) 0.6 V."""


@dataclass(frozen=True, slots=True)
class StateDocument:
    """What a state file holds: each part ``None`` when absent or unusable."""

    estimator: dict[str, Any] | None
    safety: dict[str, Any] | None
    saved_unix_s: float | None = None
    """Wall-clock time of the write (Unix seconds), ``None`` in files of earlier versions."""


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_orphans(path: Path) -> int:
    """Remove temporary files a killed ``save_state`` left beside ``path``; how many.

    Only names ``save_state`` itself makes (``.<name>.<random>.tmp``) are touched. Call it at
    start, before any write of this process. Never raises for the directory's content.
    """
    removed = 0
    try:
        candidates = list(path.parent.glob(f"{_tmp_prefix(path)}*.tmp"))
    except OSError:
        return 0
    for tmp in candidates:
        try:
            tmp.unlink()
        except OSError as e:
            log.warning("could not remove orphaned temporary file %s: %s", tmp, e)
        else:
            removed += 1
    if removed:
        log.info("removed %d orphaned temporary state file(s) beside %s", removed, path)
    return removed


def save_state(
    path: Path,
    state: dict[str, Any] | None,
    safety: dict[str, Any] | None = None,
    *,
    saved_unix_s: float | None = None,
) -> None:
    """Write ``state`` (and ``safety``) as JSON to ``path`` atomically.

    Temp file, fsync, rename, fsync of the directory. ``state`` may be ``None`` (no estimator
    state yet) while ``safety`` is set. ``saved_unix_s``: the wall-clock time of the write (Unix
    seconds), from which the next start learns how long the daemon was off.

    Raises:
        OSError: the directory cannot be created or written; the old file is left intact.
        ValueError: ``state`` holds something JSON cannot carry (NaN included).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"format": _MAGIC, "state": state}
    if safety is not None:
        doc["safety"] = safety
    if saved_unix_s is not None:
        doc["saved_unix_s"] = saved_unix_s
    data = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_INT_DIGITS = 18  # longer JSON integers are read as floats: no state value needs more


def _json_int(text: str) -> int | float:
    """A JSON integer: an ``int``, or a ``float`` when longer than ``_INT_DIGITS`` (``inf`` when
    beyond a float), so that no value of the file overflows a ``float()`` in a restore (an
    ``OverflowError`` is not the ``ValueError`` the restores refuse with) and none of 4,300+
    digits stops the parser."""
    return int(text) if len(text.lstrip("-")) <= _INT_DIGITS else float(text)


def load_document(path: Path) -> StateDocument:
    """The estimator and safety state saved at ``path`` (parts ``None``, logged, when unusable).

    A missing file is logged at INFO (first start); an unreadable, truncated or foreign file at
    WARNING. Never raises for the file's content.
    """
    none = StateDocument(None, None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("no estimator state at %s; starting from OCV", path)
        return none
    except (OSError, UnicodeDecodeError) as e:
        log.warning("estimator state %s unreadable (%s); starting from OCV", path, e)
        return none
    try:
        doc = json.loads(text, parse_int=_json_int)
    except (ValueError, RecursionError) as e:  # JSONDecodeError
        log.warning("estimator state %s is corrupt (%s); starting from OCV", path, e)
        return none
    if not isinstance(doc, dict) or doc.get("format") != _MAGIC:
        log.warning("estimator state %s is not a gateway state file; starting from OCV", path)
        return none
    state = doc.get("state")
    if state is not None and not isinstance(state, dict):
        log.warning("estimator state %s has no state object; starting from OCV", path)
        state = None
    elif state is None:
        log.info("%s holds no estimator state; starting from OCV", path)
    safety = doc.get("safety")
    if safety is not None and not isinstance(safety, dict):
        log.warning("safety state in %s is not an object; ignored", path)
        safety = None
    saved = doc.get("saved_unix_s")
    saved_s = finite_number(saved)
    if saved_s is None and saved is not None:
        log.warning("saved_unix_s=%r in %s is no time; the time off is not counted", saved, path)
    return StateDocument(state, safety, saved_s)


def load_state(path: Path) -> dict[str, Any] | None:
    """The estimator state saved at ``path``, or ``None`` (logged with the reason)."""
    return load_document(path).estimator


def restore_estimator(estimator: SocEstimator, path: Path) -> bool:
    """Load the state at ``path`` into ``estimator``; False (logged) when none fits.

    A state of another cell count, chemistry or version, or a malformed one, is logged with the
    reason and ignored: the estimator then starts from the OCV of the first voltages.
    """
    state = load_state(path)
    if state is None:
        return False
    try:
        notes = estimator.restore(state)
    except ValueError as e:
        log.warning("estimator state %s does not fit this pack (%s); starting from OCV", path, e)
        return False
    log.info("estimator state restored from %s", path)
    for note in notes:
        log.warning("estimator state %s: %s", path, note)
    return True


def load_ocv_table(path: Path) -> OcvTable:
    """Read and check a user OCV table (see ``read_ocv_table``).

    Raises:
        ConfigError: the file cannot be read, or a row is malformed (named as ``file:row``).
    """
    return read_ocv_table(path)[0]


def read_ocv_table(path: Path) -> tuple[OcvTable, OcvTableFormat]:
    """Read and check a user OCV table; also what was detected (header, units, order).

    The formats accepted are those of ``gateway.core.ocv_file.parse_ocv_table``. Only a regular
    file of at most ``OCV_TABLE_MAX_BYTES`` is read (a device or FIFO is refused without
    reading from it or waiting on it).

    Raises:
        ConfigError: the file cannot be read, is not a regular file, is too large, or a row is
            malformed (named as ``file:row``).
    """
    text = _read_bounded(path)
    try:
        return parse_ocv_table(text, str(path))
    except ValueError as e:
        raise ConfigError(f"soc.ocv_table: {e}") from None


def _read_bounded(path: Path) -> str:
    """The text of ``path``, a regular file of at most ``OCV_TABLE_MAX_BYTES`` (UTF-8)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        # A relative path resolves against the working directory (``/`` under systemd), not
        # the config file's: say where it was looked for, as for can.dbc and can.profile.
        where = "" if path.is_absolute() else f" ({os.path.abspath(path)})"
        raise ConfigError(f"soc.ocv_table: {path}{where}: cannot read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, a device, a FIFO
            raise ConfigError(f"soc.ocv_table: {path}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(OCV_TABLE_MAX_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"soc.ocv_table: {path}: cannot read: {e.strerror}") from None
    if len(data) > OCV_TABLE_MAX_BYTES:
        raise ConfigError(
            f"soc.ocv_table: {path}: larger than {OCV_TABLE_MAX_BYTES / 2**20:g} MiB (a real "
            "OCV table has 10..2000 rows, a few KiB)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"soc.ocv_table: {path}: not a text file") from None


def check_ocv_table_fits(
    path: Path, chemistry: str, overvoltage_alarm_v: float, cvl_cell_v: float
) -> None:
    """Check a user OCV table against the pack's voltages: a table of another chemistry fails.

    Args:
        path: the table (``soc.ocv_table``).
        chemistry: ``pack.chemistry``, named in the errors.
        overvoltage_alarm_v: ``protection.cell_overvoltage_alarm_v`` in force, V per cell.
        cvl_cell_v: ``limits.cvl_cell_v`` in force, V per cell.

    Raises:
        ConfigError: the table cannot be read, its highest OCV is above the over-voltage alarm
            (a rested cell cannot sit where the BMS trips), or it reaches 100 % more than
            ``OCV_BELOW_CVL_MAX_V`` below the charge voltage (full would never be reached).
    """
    table, _ = read_ocv_table(path)
    top_v = table.ocv_v[-1]
    hint = f"a table of another chemistry than pack.chemistry (={chemistry!r})?"
    if top_v > overvoltage_alarm_v:
        raise ConfigError(
            f"soc.ocv_table: {path}: its highest OCV (={top_v:.3f} V) is above "
            f"protection.cell_overvoltage_alarm_v (={overvoltage_alarm_v:g} V): a rested cell "
            f"cannot sit above the level the BMS trips at; {hint}"
        )
    if table.soc_pct[-1] >= 100.0 and top_v < cvl_cell_v - OCV_BELOW_CVL_MAX_V:
        raise ConfigError(
            f"soc.ocv_table: {path}: its OCV at 100 % (={top_v:.3f} V) lies more than "
            f"{OCV_BELOW_CVL_MAX_V:g} V below limits.cvl_cell_v (={cvl_cell_v:g} V): charging "
            f"to that voltage would go far past full; {hint}"
        )


def describe_ocv_table(soc: SocConfig) -> str | None:
    """What the gateway reads from ``soc.ocv_table`` in one line, or ``None`` when unset.

    Raises:
        ConfigError: the table cannot be read or is malformed.
    """
    if not soc.ocv_table:
        return None
    table, fmt = read_ocv_table(Path(soc.ocv_table))
    return f"soc.ocv_table: {soc.ocv_table}: {fmt.describe(table)}"


def resolve_chemistry(pack: PackConfig, soc: SocConfig) -> Chemistry:
    """The pack's chemistry with the user's OCV table (``soc.ocv_table``) when one is set.

    Raises:
        ConfigError: the user's table cannot be read or is malformed.
    """
    chem = get_chemistry(pack.chemistry)
    if soc.ocv_table:
        chem = chem.with_ocv(load_ocv_table(Path(soc.ocv_table)))
    return chem
