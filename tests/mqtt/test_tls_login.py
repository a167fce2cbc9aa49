"""TLS and username/password against a mosquitto that requires both."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from gateway.core.model import Command, CommandResult
from gateway.errors import ConfigError
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.publisher import MqttPublisher
from tests.mqtt.conftest import HOST, Mosquitto
from tests.mqtt.outputs import make_output

USER, PASSWORD = "gw", "secret-pass"


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    """A broker with TLS (a CA made here) and a password file; yields it and the CA file."""
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("openssl and mosquitto_passwd are needed")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
         "-subj", "/CN=bmsgw-test-ca", cwd=tmp_path)  # fmt: skip
    _run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext",
         cwd=tmp_path)  # fmt: skip
    _run("mosquitto_passwd", "-b", "-c", "passwd", USER, PASSWORD, cwd=tmp_path)
    # As root, mosquitto drops to user "mosquitto" before reading these (0600, under a 0700 dir).
    stay = "user root\n" if os.geteuid() == 0 else ""
    extra = stay + (
        f"password_file {tmp_path}/passwd\n"
        f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\nkeyfile {tmp_path}/server.key\n"
    )
    broker = Mosquitto(tmp_path, extra=extra)
    broker.conf.write_text(
        broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    )
    broker.start()
    yield broker, tmp_path / "ca.pem"
    broker.stop()


def _refuse(cmd: Command) -> CommandResult:
    return CommandResult(False, "not here")


@contextlib.asynccontextmanager
async def _running(pub: MqttPublisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pub.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _wait(pred: object, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_tls_and_login_by_config(secure: tuple[Mosquitto, Path]) -> None:
    broker, ca = secure
    cfg = MqttConfig(
        enabled=True, host=HOST, port=broker.port, username=USER, password=PASSWORD,
        tls=True, tls_ca_file=str(ca), state_interval_s=0.1, discovery=False,
    )  # fmt: skip
    pub = MqttPublisher(cfg, "tls1", _refuse)
    pub.publish_output(make_output())
    async with _running(pub):
        await _wait(lambda: pub.status.connected)
        ctx = ssl.create_default_context(cafile=str(ca))
        async with aiomqtt.Client(
            HOST, broker.port, username=USER, password=PASSWORD, tls_context=ctx, timeout=5
        ) as client:
            await client.subscribe("bms/tls1/state")
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                assert b'"gateway_id":"tls1"' in m.payload
                break


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"password": "wrong"}, "not authori"),  # mosquitto: "Not authorized"
        ({"tls_ca_file": None}, "certificate verify failed"),  # not signed by a system CA
    ],
)
async def test_refused_login_or_untrusted_broker_keeps_retrying(
    secure: tuple[Mosquitto, Path],
    change: dict[str, object],
    error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, ca = secure
    settings: dict[str, object] = {
        "enabled": True, "host": HOST, "port": broker.port, "username": USER,
        "password": PASSWORD, "tls": True, "tls_ca_file": str(ca), "reconnect_max_s": 0.1,
    }  # fmt: skip
    settings.update(change)
    pub = MqttPublisher(MqttConfig(**settings), "tls2", _refuse)  # type: ignore[arg-type]
    async with _running(pub) as task:
        await _wait(lambda: pub.status.reconnects >= 2)
        assert not pub.status.connected
        assert error in pub.status.last_error.lower(), pub.status.last_error
        assert not task.done()  # a refused link is retried, never fatal
    config_lines = [r for r in caplog.records if "configuration problem" in r.getMessage()]
    if "password" in change:
        # Logged once at ERROR however often it is retried, naming the settings to check.
        assert len(config_lines) == 1, [r.getMessage() for r in config_lines]
        assert config_lines[0].levelname == "ERROR"
        assert "mqtt.password" in config_lines[0].getMessage()
    else:
        assert config_lines == []


async def test_missing_tls_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = MqttConfig(enabled=True, tls=True, tls_ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="mqtt TLS"):
        await MqttPublisher(cfg, "x", _refuse).run()
