#!/usr/bin/env bash
# Install bms-gateway as a systemd service on a device (run as root from a checkout).
#   sudo systemd/install.sh            installs into /opt/bms-gateway and enables the service
# The config goes to /etc/bms-gateway/config.toml (kept if it exists); state to /var/lib/bms-gateway.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/bms-gateway

install -d "$prefix"
cp -a "$src/." "$prefix/"
rm -rf "$prefix/.venv"
python3 -m venv "$prefix/.venv"
"$prefix/.venv/bin/pip" install --quiet "$prefix"
# Sparkplug B codec; --no-deps: its metadata pins paho-mqtt<2, which aiomqtt (>=2.1) excludes.
"$prefix/.venv/bin/pip" install --quiet --no-deps 'pysparkplug>=0.6.1,<0.7'

install -d -m 0755 /etc/bms-gateway
if [ ! -e /etc/bms-gateway/config.toml ]; then
  install -m 0644 "$src/systemd/config.example.toml" /etc/bms-gateway/config.toml
fi
"$prefix/.venv/bin/bms-gateway" check-config --config /etc/bms-gateway/config.toml >/dev/null

install -m 0644 "$src/systemd/bms-gateway.service" /etc/systemd/system/bms-gateway.service
systemctl daemon-reload
systemctl enable --now bms-gateway.service
systemctl --no-pager status bms-gateway.service || true
