"""An MQTT broker on loopback for the demo (and benchmarks): reuse, mosquitto, or amqtt.

``async with LocalBroker(port=1883) as info:`` gives a broker to publish to:

1. a broker already serving ``host:port`` (a system mosquitto, often) is used as it is;
2. else ``mosquitto`` (when installed) is started on ``port`` when it is free, else on a free port;
3. else amqtt, a pure-Python broker, when it is installed (``pip install amqtt``);
4. else ``GatewayError`` says what to install.

``info.which`` says which of these it was, so the demo view can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from gateway.errors import GatewayError
from gateway.mqtt.session import probe_broker

__all__ = ["BrokerInfo", "LocalBroker", "find_mosquitto", "free_port", "mosquitto_conf"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """The broker in use."""

    host: str
    port: int
    which: Literal["existing", "mosquitto", "amqtt"]
    description: str  # one line for the demo view

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def mosquitto_conf(host: str, port: int) -> str:
    """A mosquitto 2 config: one anonymous loopback listener, no persistence."""
    return (
        f"listener {port} {host}\n"
        "allow_anonymous true\n"
        # Ten times faster for bursts of QoS 1 publishes (discovery) than Nagle's batching.
        "set_tcp_nodelay true\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )


class LocalBroker:
    """Async context manager that provides an MQTT broker on loopback.

    Args:
        port: the port to use (or reuse); 0 means a free one.
        host: a loopback address.
        reuse_existing: use a broker that already serves ``host:port``.
        prefer: ``"mosquitto"`` (default; falls back to amqtt) or ``"amqtt"``.
    """

    def __init__(
        self,
        port: int = 1883,
        *,
        host: str = "127.0.0.1",
        reuse_existing: bool = True,
        prefer: Literal["mosquitto", "amqtt"] = "mosquitto",
    ) -> None:
        if not 0 <= port <= 65535:
            raise GatewayError(f"broker port (={port}) must be within 0..65535")
        self.host = host
        self.port = port
        self.reuse_existing = reuse_existing
        self.prefer = prefer
        self._proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._amqtt: Any = None
        self.info: BrokerInfo | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the mosquitto we started (for benchmarks), else ``None``."""
        return self._proc.pid if self._proc is not None else None

    async def __aenter__(self) -> BrokerInfo:
        """Find or start the broker."""
        host = self.host
        if self.port and self.reuse_existing and await probe_broker(host, self.port):
            self.info = BrokerInfo(
                host, self.port, "existing", f"existing broker at {host}:{self.port} (reused)"
            )
            return self.info
        port = self.port if self.port and not _port_in_use(host, self.port) else free_port(host)
        if self.port and port != self.port:
            log.warning("port %d is taken by something that is not MQTT; using %d", self.port, port)
        mosquitto = find_mosquitto()
        if self.prefer == "mosquitto" and mosquitto is not None:
            self.info = await self._start_mosquitto(mosquitto, host, port)
        elif _amqtt_available():
            self.info = await self._start_amqtt(host, port)
        elif mosquitto is not None:
            self.info = await self._start_mosquitto(mosquitto, host, port)
        else:
            raise GatewayError(
                "no MQTT broker available: install mosquitto (apt-get install mosquitto) "
                "or amqtt (pip install amqtt), or point mqtt.host/port at a running broker"
            )
        return self.info

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker if we started it."""
        await self.stop()

    async def stop(self) -> None:
        """Stop a broker we started (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(_STOP_TIMEOUT_S):  # not wait_for: it can eat a cancel
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        broker, self._amqtt = self._amqtt, None
        if broker is not None:
            await broker.shutdown()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    async def _wait_ready(self, host: str, port: int, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                break
            if await probe_broker(host, port, timeout_s=0.5):
                return
            await asyncio.sleep(0.05)
        err = ""
        if self._tmp is not None:
            log_file = Path(self._tmp.name) / "mosquitto.log"
            with contextlib.suppress(OSError):
                err = log_file.read_text(encoding="utf-8", errors="replace").strip()[-500:]
        await self.stop()
        raise GatewayError(f"{what} did not start on {host}:{port}" + (f": {err}" if err else ""))

    async def _start_mosquitto(self, binary: str, host: str, port: int) -> BrokerInfo:
        self._tmp = tempfile.TemporaryDirectory(prefix="bmsgw-mosquitto-")
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text(mosquitto_conf(host, port), encoding="utf-8")
        with (Path(self._tmp.name) / "mosquitto.log").open("wb") as err:
            self._proc = await asyncio.create_subprocess_exec(
                binary,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        await self._wait_ready(host, port, "mosquitto")
        return BrokerInfo(
            host, port, "mosquitto", f"mosquitto at {host}:{port} (started, pid {self._proc.pid})"
        )

    async def _start_amqtt(self, host: str, port: int) -> BrokerInfo:
        # Imported by name: amqtt is optional and not a dependency of the gateway.
        broker_mod = importlib.import_module("amqtt.broker")
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._amqtt = broker_mod.Broker(config)
        await self._amqtt.start()
        await self._wait_ready(host, port, "amqtt")
        return BrokerInfo(host, port, "amqtt", f"amqtt (pure Python) at {host}:{port} (started)")


def _amqtt_available() -> bool:
    try:
        importlib.import_module("amqtt.broker")
    except ImportError:
        return False
    return True
