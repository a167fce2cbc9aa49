"""Settings of signed updates (``[update]``): the TUF repository, local state, safety and UDS."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.core.config import Section

__all__ = ["UpdateConfig"]


class UpdateConfig(Section):
    """Signed updates: TUF repository, apply and health check, safe-to-update gate, UDS flashing.

    Updates are off until ``metadata_url`` is set. See docs/UPDATES.md.
    """

    metadata_url: str = ""
    """Base URL of the TUF metadata (``https://updates.example.com/metadata/``); empty: off."""
    targets_url: str = ""
    """Base URL of the TUF targets (``https://updates.example.com/targets/``)."""
    root: str = "/etc/bms-gateway/root.json"
    """The trusted TUF root.json shipped or installed by the installer (the trust anchor)."""
    state_dir: str = "state/update"
    """Local update state: verified metadata, downloads, installed versions, health and hold
    files (systemd: /var/lib/bms-gateway/update)."""
    health_window_s: float = Field(default=30.0, gt=0, le=3600)
    """After a restart, watch the health criterion this long before an update counts as good."""
    restart_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """After a restart, the new process must report health within this (else roll back)."""
    health_stale_s: float = Field(default=5.0, gt=0, le=600)
    """A health record older than this means the gateway is not running (or hung)."""
    safe_current_a: float = Field(default=2.0, ge=0, le=100_000)
    """An update starts only while the pack current magnitude is at most this (or --force)."""
    restart_command: tuple[str, ...] = ("systemctl", "restart", "bms-gateway.service")
    """Command that restarts the gateway after a switch (in a container: one that re-execs)."""
    check_interval_s: float | None = Field(default=None, gt=0, le=604_800, examples=[86400.0])
    """Periodic update check in the daemon (logs and publishes what is available; never
    applies); unset: off."""
    uds_tx_id: int = Field(default=0x7E0, ge=0, le=0x7FF)
    """ISO-TP request identifier of the BMS bootloader (11-bit, physical addressing)."""
    uds_rx_id: int = Field(default=0x7E8, ge=0, le=0x7FF)
    """ISO-TP response identifier of the BMS bootloader."""
    uds_security_level: int = Field(default=1, ge=1, le=0x41)
    """SecurityAccess level (odd: the requestSeed sub-function) for programming."""
    uds_security_secret: str = Field(default="00" * 16, pattern=r"^([0-9a-fA-F]{2}){4,64}$")
    """Hex secret of the seed/key algorithm (key = HMAC-SHA256(secret, seed), first 4 bytes)."""
    uds_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """UDS request timeout (P2*); a transfer that stops answering this long is interrupted."""
    flash_retries: int = Field(default=2, ge=0, le=20)
    """An interrupted BMS transfer is retried (resumed) this many times before giving up."""
    flash_retry_wait_s: float = Field(default=5.0, ge=0, le=600)
    """Pause before each retry (the bus or the BMS may need a moment to come back)."""
    uds_stmin_ms: int = Field(default=0, ge=0, le=127)
    """ISO-TP separation time the gateway asks of the BMS between consecutive frames."""

    @model_validator(mode="after")
    def _check_ids(self) -> UpdateConfig:
        if self.uds_tx_id == self.uds_rx_id:
            raise ValueError(f"uds_rx_id (={self.uds_rx_id:#x}) must differ from uds_tx_id")
        if self.uds_security_level % 2 == 0:
            raise ValueError(
                f"uds_security_level (={self.uds_security_level}) must be odd (requestSeed)"
            )
        if self.metadata_url and not self.targets_url:
            raise ValueError("targets_url must be set together with metadata_url")
        return self

    @property
    def enabled(self) -> bool:
        """Whether updates are configured (``metadata_url`` set)."""
        return bool(self.metadata_url)
