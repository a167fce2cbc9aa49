"""The Sparkplug B edge node: one aiomqtt session of its own, pysparkplug's payload codec.

Sparkplug B 3.0 (Eclipse Tahu) as it applies to one gateway with one pack:

- On every MQTT CONNECT the birth/death sequence ``bdSeq`` increases (mod 256); the CONNECT's
  will is the NDEATH carrying it, so the broker announces our death when we vanish (SIGKILL,
  power cut, network loss) after 1.5 keepalives.
- NBIRTH (``seq`` 0, with ``bdSeq`` and ``Node Control/Rebirth``), then DBIRTH of the pack with
  every metric; after that NDATA/DDATA carry only metrics that changed (report by exception).
  ``seq`` runs 0..255 over every message of the session.
- A host's NCMD ``Node Control/Rebirth`` = true makes us publish NBIRTH and DBIRTH again.
- A new metric (a new limit term, say) cannot appear in DDATA: the device is reborn instead.
- On a clean stop we publish the NDEATH ourselves before disconnecting.

pysparkplug's own client is built on paho-mqtt 1.x, which aiomqtt excludes; this module uses only
its payload classes (``NBirth``, ``DBirth``, ``DData``, ``NDeath``, ``NCmd``) and ``Topic``.
Failures are link errors, retried with capped, jittered backoff; nothing here stops the control
step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass

import aiomqtt
from google.protobuf.message import DecodeError
from pysparkplug import (
    DataType,
    DBirth,
    DData,
    MessageType,
    NBirth,
    NCmd,
    NDeath,
    Topic,
)
from pysparkplug import Metric as SpMetric

from gateway.backoff import Jitter, backoff_s
from gateway.core.model import ControlOutput
from gateway.errors import ConfigError
from gateway.sparkplug.config import SparkplugConfig
from gateway.sparkplug.metrics import (
    DeviceMetrics,
    Metric,
    MetricType,
    changed,
    device_metrics,
    node_metrics,
)

__all__ = ["SparkplugEdge", "SparkplugStatus"]

log = logging.getLogger(__name__)

_MAX_CMD_BYTES = 65536  # an NCMD larger than this is not decoded
_GOODBYE_S = 1.0
_TYPES = {
    MetricType.DOUBLE: DataType.DOUBLE,
    MetricType.INT64: DataType.INT64,
    MetricType.UINT64: DataType.UINT64,
    MetricType.BOOLEAN: DataType.BOOLEAN,
    MetricType.STRING: DataType.STRING,
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sp(name: str, m: Metric, ts: int) -> SpMetric:
    return SpMetric(
        timestamp=ts, name=name, datatype=_TYPES[m.type], value=m.value, is_null=m.value is None
    )


def _metrics(ms: DeviceMetrics, ts: int) -> tuple[SpMetric, ...]:
    return tuple(_sp(k, v, ts) for k, v in ms.items())


@dataclass(frozen=True, slots=True)
class SparkplugStatus:
    """What the edge node is doing, for logs, the dashboard and tests."""

    connected: bool
    bd_seq: int
    births: int
    data_messages: int
    rebirths_requested: int
    last_error: str


class SparkplugEdge:
    """Publishes the pack as a Sparkplug B device of this gateway's edge node.

    Args:
        config: the ``[sparkplug]`` settings.
        gateway_id: the edge node id when ``sparkplug.edge_node_id`` is empty.
        version: the gateway's version (an NBIRTH property).
    """

    def __init__(self, config: SparkplugConfig, gateway_id: str, version: str) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.version = version
        self.edge_node_id = config.edge_node_id or gateway_id
        g, e, d = config.group_id, self.edge_node_id, config.device_id
        self.topic_nbirth = str(Topic(group_id=g, message_type=MessageType.NBIRTH, edge_node_id=e))
        self.topic_ndeath = str(Topic(group_id=g, message_type=MessageType.NDEATH, edge_node_id=e))
        self.topic_ncmd = str(Topic(group_id=g, message_type=MessageType.NCMD, edge_node_id=e))
        self.topic_dbirth = str(
            Topic(group_id=g, message_type=MessageType.DBIRTH, edge_node_id=e, device_id=d)
        )
        self.topic_ddata = str(
            Topic(group_id=g, message_type=MessageType.DDATA, edge_node_id=e, device_id=d)
        )
        self._latest: ControlOutput | None = None
        self._bd_seq = -1  # the first CONNECT uses 0
        self._seq = 0
        self._sent: DeviceMetrics | None = None  # the device's metrics as the host knows them
        self._rebirth = asyncio.Event()
        self._connected = False
        self._births = 0
        self._data = 0
        self._rebirths = 0
        self._last_error = ""
        self._up_this_try = False
        self._nbirth: NBirth | None = None  # NCMD metrics omit datatypes: our NBIRTH has them
        self._tls: ssl.SSLContext | None = None

    # --- called by the control loop -----------------------------------------------------------

    def publish_output(self, out: ControlOutput) -> None:
        """Hand over the latest step; returns at once (the scan compares and sends)."""
        self._latest = out

    @property
    def status(self) -> SparkplugStatus:
        """Connection state and counters."""
        return SparkplugStatus(
            connected=self._connected,
            bd_seq=self._bd_seq,
            births=self._births,
            data_messages=self._data,
            rebirths_requested=self._rebirths,
            last_error=self._last_error,
        )

    # --- the session --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, birth, report by exception, reconnect, until cancelled.

        Raises:
            ConfigError: the TLS CA file cannot be used.
        """
        self._tls = await asyncio.to_thread(self._tls_context)
        attempt = 0
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as e:
                if not self._last_error:
                    log.warning("Sparkplug broker %s:%d: %s", self.config.host, self.config.port, e)
                self._last_error = str(e) or type(e).__name__
            except Exception as e:
                # A side output: a bug here is logged and the session restarted, never the end
                # of the gateway.
                log.exception("Sparkplug edge node failed; restarting")
                self._last_error = f"internal error ({type(e).__name__})"
            if self._up_this_try:
                attempt = 0  # it was up: the next try is a quick one
                self._up_this_try = False
            attempt += 1
            # No bound on the exponent here (as before): the cap is the only bound.
            await asyncio.sleep(
                backoff_s(
                    attempt,
                    self.config.reconnect_max_s,
                    max_exponent=None,
                    jitter=Jitter.FULL_CLIPPED,
                )
            )

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def _ndeath(self) -> bytes:
        bd = SpMetric(
            timestamp=_now_ms(), name="bdSeq", datatype=DataType.UINT64, value=self._bd_seq
        )
        return NDeath(timestamp=_now_ms(), bd_seq_metric=bd).encode()

    async def _session(self) -> None:
        cfg = self.config
        self._bd_seq = (self._bd_seq + 1) % 256
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password is not None else None,
            identifier=f"spb-{cfg.group_id}-{self.edge_node_id}",
            will=aiomqtt.Will(self.topic_ndeath, self._ndeath(), qos=1, retain=False),
            clean_session=True,
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            tls_context=self._tls,
        )
        async with client:
            self._connected = True
            try:
                await client.subscribe(self.topic_ncmd, qos=1)
                log.info(
                    "Sparkplug edge node %s/%s connected (bdSeq %d)",
                    cfg.group_id,
                    self.edge_node_id,
                    self._bd_seq,
                )
                await self._node_birth(client)
                self._up_this_try = True
                self._last_error = ""
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._scanner(client), name="gateway.sparkplug.scan")
                    tg.create_task(self._receiver(client), name="gateway.sparkplug.recv")
            except asyncio.CancelledError:
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(_GOODBYE_S):
                        await client.publish(self.topic_ndeath, self._ndeath(), qos=1)
                raise
            except BaseExceptionGroup as eg:
                link, rest = eg.split(aiomqtt.MqttError)
                if rest is not None or link is None:
                    raise
                first: BaseException = link
                while isinstance(first, BaseExceptionGroup):
                    first = first.exceptions[0]
                raise first from None
            finally:
                self._connected = False

    async def _node_birth(self, client: aiomqtt.Client) -> None:
        """NBIRTH (seq 0), then DBIRTH when a step is there."""
        self._seq = 0
        ts = _now_ms()
        metrics = node_metrics(self._bd_seq, self.version, self.gateway_id)
        payload = NBirth(timestamp=ts, seq=self._next_seq(), metrics=_metrics(metrics, ts))
        self._nbirth = payload
        await client.publish(self.topic_nbirth, payload.encode(), qos=0)
        self._births += 1
        self._sent = None
        if self._latest is not None:
            await self._device_birth(client, self._latest)

    async def _device_birth(self, client: aiomqtt.Client, out: ControlOutput) -> None:
        ts = _now_ms()
        metrics = device_metrics(out, cells=self.config.cells)
        payload = DBirth(timestamp=ts, seq=self._next_seq(), metrics=_metrics(metrics, ts))
        await client.publish(self.topic_dbirth, payload.encode(), qos=0)
        self._sent = metrics

    async def _scanner(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.scan_interval_s):
                    await self._rebirth.wait()
            if self._rebirth.is_set():
                self._rebirth.clear()
                await self._node_birth(client)
                continue
            out = self._latest
            if out is None:
                continue
            now = device_metrics(out, cells=self.config.cells)
            if self._sent is not None:
                # A metric that went away (a limit term no longer computed) stays, as null: the
                # host keeps its definition and no rebirth is needed for it.
                for name, m in self._sent.items():
                    if name not in now:
                        now[name] = Metric(m.type, None)
            delta = changed(self._sent, now) if self._sent is not None else None
            if delta is None:
                await self._device_birth(client, out)  # first data, or the metric set changed
                continue
            if not delta:
                continue
            ts = _now_ms()
            payload = DData(timestamp=ts, seq=self._next_seq(), metrics=_metrics(delta, ts))
            await client.publish(self.topic_ddata, payload.encode(), qos=0)
            self._sent = now
            self._data += 1

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.topic.value != self.topic_ncmd:
                continue
            raw = message.payload if isinstance(message.payload, bytes) else b""
            if len(raw) > _MAX_CMD_BYTES:
                log.warning("Sparkplug NCMD of %d bytes ignored", len(raw))
                continue
            try:
                cmd = NCmd.decode(raw, birth=self._nbirth)
            except (DecodeError, ValueError, KeyError, TypeError, NotImplementedError) as e:
                log.warning("Sparkplug NCMD not decoded (%s); ignored", e)
                continue
            for m in cmd.metrics:
                if m.name == "Node Control/Rebirth" and m.value is True:
                    log.info("Sparkplug rebirth requested by a host")
                    self._rebirths += 1
                    self._rebirth.set()
                elif m.name:
                    log.warning("Sparkplug NCMD metric %r not supported; ignored", m.name)

    def _tls_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if not cfg.tls:
            return None
        try:
            return ssl.create_default_context(cafile=cfg.tls_ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"sparkplug TLS CA file: {e}") from None
