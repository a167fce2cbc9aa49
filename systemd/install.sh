#!/usr/bin/env bash
# Install or upgrade bms-gateway as a systemd service, from a checkout (run as root).
#
#   sudo systemd/install.sh              install, or upgrade beside the running version
#   sudo systemd/install.sh --rollback   switch back to the previous version
#
# Layout (see README, "Install as a service"):
#   /opt/bms-gateway/venvs/<stamp>/      one virtualenv per install, the gateway installed from a
#                                        wheel built from this checkout (no .git, .venv or tests)
#   /opt/bms-gateway/current -> venvs/.. the version the service runs (switched atomically)
#   /opt/bms-gateway/previous -> ...     the one before, kept for --rollback
#   /etc/bms-gateway/config.toml         0640 root:bms-gateway (it may hold an MQTT password);
#                                        kept on upgrade
#   /etc/systemd/system/bms-gateway.service
#   /etc/systemd/network/80-bms-can.network   brings CAN up at boot (bit rate, bus-off restart)
#
# An upgrade builds the new virtualenv beside the running one and checks the config with it
# before it switches the symlink and restarts the service; the running venv is never deleted.
# The service is not enabled while the config still has can.interface = "virtual": edit it, then
# `systemctl enable --now bms-gateway`.
#
# Environment: PYTHON (interpreter for the venvs, default python3), SERVICE_GROUP (default
# bms-gateway), ROOT (install under this directory instead of /, for a staged or test install:
# paths inside the installed files stay the real ones; systemd is then left alone unless
# SYSTEMCTL names the systemctl to use, as the tests do with a stub).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
SERVICE_GROUP="${SERVICE_GROUP:-bms-gateway}"
ROOT="${ROOT:-}"
ROOT="${ROOT%/}"
if [ -n "$ROOT" ]; then SYSTEMCTL="${SYSTEMCTL:-}"; else SYSTEMCTL="${SYSTEMCTL:-systemctl}"; fi
PREFIX=/opt/bms-gateway
UNIT=bms-gateway.service
CONF_DIR=/etc/bms-gateway
CONFIG="$CONF_DIR/config.toml"
NETWORK_FILE=/etc/systemd/network/80-bms-can.network
KEEP_VENVS=2 # current and previous; older ones are removed

src="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf 'install.sh: %s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
have_systemctl() { [ -n "$SYSTEMCTL" ] && command -v "$SYSTEMCTL" >/dev/null 2>&1; }

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"
  command -v "$PYTHON" >/dev/null 2>&1 ||
    die "$PYTHON not found: install Python 3.11 or newer (apt-get install python3)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); bms-gateway needs Python 3.11 or newer (set PYTHON=python3.11)"
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
    die "$PYTHON has no venv module: apt-get install python3-venv"
  [ -f "$src/pyproject.toml" ] && [ -d "$src/gateway" ] ||
    die "$src is not a bms-gateway checkout (no pyproject.toml and gateway/)"
  have_systemctl || say "no systemctl (or a staged install): files are installed, the service is not touched"
}

# The wheel is built from a copy of what the package needs, so the checkout stays clean and
# nothing else (.git, .venv, tests, benches) can end up in the install.
build_wheel() { # venv dir, output dir
  local venv="$1" out="$2" tree
  tree="$(mktemp -d)"
  # -h: gateway/data/dbc is a symlink to ../../dbc in the checkout.
  tar -C "$src" -chf - pyproject.toml README.md LICENSE gateway dbc | tar -C "$tree" -xf -
  "$venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$out" "$tree" ||
    die "could not build the wheel from $src"
  rm -rf "$tree"
}

new_venv() { # prints the new venv's path (relative to the prefix)
  local stamp rel dir wheels
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  rel="venvs/$stamp"
  dir="$ROOT$PREFIX/$rel"
  [ ! -e "$dir" ] || die "$dir exists already (two installs within a second?)"
  install -d -m 0755 "$ROOT$PREFIX/venvs"
  "$PYTHON" -m venv "$dir" >&2
  wheels="$(mktemp -d)"
  build_wheel "$dir" "$wheels" >&2
  "$dir/bin/pip" install --quiet "$wheels"/bms_gateway-*.whl >&2 ||
    { rm -rf "$dir" "$wheels"; die "pip could not install the gateway into $dir"; }
  # Sparkplug B codec; --no-deps: its metadata pins paho-mqtt<2, which aiomqtt (>=2.1) excludes.
  "$dir/bin/pip" install --quiet --no-deps 'pysparkplug>=0.6.1,<0.7' >&2 ||
    { rm -rf "$dir" "$wheels"; die "pip could not install pysparkplug into $dir"; }
  rm -rf "$wheels"
  echo "$rel"
}

ensure_group() {
  getent group "$SERVICE_GROUP" >/dev/null 2>&1 && return
  [ -z "$ROOT" ] || die "group $SERVICE_GROUP does not exist (create it, or set SERVICE_GROUP)"
  groupadd --system "$SERVICE_GROUP"
  say "created system group $SERVICE_GROUP (the service reads its config through it)"
}

install_config() {
  install -d -m 0755 "$ROOT$CONF_DIR"
  if [ ! -e "$ROOT$CONFIG" ]; then
    install -m 0640 -o root -g "$SERVICE_GROUP" "$src/systemd/config.example.toml" "$ROOT$CONFIG"
    say "installed $CONFIG (every key commented out: edit it)"
  else
    # Kept as it is; only its owner and mode are made safe (it may hold an MQTT password).
    chown "root:$SERVICE_GROUP" "$ROOT$CONFIG"
    chmod 0640 "$ROOT$CONFIG"
    say "kept $CONFIG"
  fi
}

install_network_file() {
  install -d -m 0755 "$ROOT/etc/systemd/network"
  if [ -e "$ROOT$NETWORK_FILE" ]; then
    say "kept $NETWORK_FILE"
    return
  fi
  install -m 0644 "$src/systemd/80-bms-can.network" "$ROOT$NETWORK_FILE"
  say "installed $NETWORK_FILE (can0 at 500 kbit/s, bus-off restart after 100 ms: edit Name= and BitRate= to your BMS)"
  if have_systemctl && [ -z "$ROOT" ] && ! "$SYSTEMCTL" is-enabled --quiet systemd-networkd 2>/dev/null; then
    say "systemd-networkd is not enabled; for CAN at boot: systemctl enable --now systemd-networkd"
  fi
}

install_unit() {
  install -d -m 0755 "$ROOT/etc/systemd/system"
  sed "s/^SupplementaryGroups=.*/SupplementaryGroups=$SERVICE_GROUP/" \
    "$src/systemd/$UNIT" >"$ROOT/etc/systemd/system/$UNIT.tmp"
  chmod 0644 "$ROOT/etc/systemd/system/$UNIT.tmp"
  mv -f "$ROOT/etc/systemd/system/$UNIT.tmp" "$ROOT/etc/systemd/system/$UNIT"
}

switch_to() { # relative venv path: current -> it, previous -> what current was
  local rel="$1" old=""
  if [ -L "$ROOT$PREFIX/current" ]; then
    old="$(readlink "$ROOT$PREFIX/current")"
  fi
  # A symlink renamed over the old one: the switch is atomic, never a moment without `current`.
  ln -sfn "$rel" "$ROOT$PREFIX/current.new"
  mv -T "$ROOT$PREFIX/current.new" "$ROOT$PREFIX/current"
  if [ -n "$old" ] && [ "$old" != "$rel" ]; then
    ln -sfn "$old" "$ROOT$PREFIX/previous.new"
    mv -T "$ROOT$PREFIX/previous.new" "$ROOT$PREFIX/previous"
  fi
}

prune_venvs() { # keep current and previous (and anything newer than KEEP_VENVS)
  local keep_cur keep_prev dir
  keep_cur="$(readlink "$ROOT$PREFIX/current" 2>/dev/null || true)"
  keep_prev="$(readlink "$ROOT$PREFIX/previous" 2>/dev/null || true)"
  for dir in $(ls -1d "$ROOT$PREFIX"/venvs/*/ 2>/dev/null | sort -r | tail -n +"$((KEEP_VENVS + 1))"); do
    dir="venvs/$(basename "$dir")"
    if [ "$dir" != "$keep_cur" ] && [ "$dir" != "$keep_prev" ]; then
      rm -rf "${ROOT:?}$PREFIX/$dir"
      say "removed old $PREFIX/$dir"
    fi
  done
}

can_interface() { # the configured can.interface, as the installed gateway resolves it
  "$ROOT$PREFIX/current/bin/bms-gateway" check-config --config "$ROOT$CONFIG" |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["can"]["interface"])'
}

start_or_restart() {
  have_systemctl || return 0
  "$SYSTEMCTL" daemon-reload
  if "$SYSTEMCTL" is-active --quiet "$UNIT"; then
    # Type=notify: restart returns once the new version said READY, or fails.
    if ! "$SYSTEMCTL" restart "$UNIT"; then
      say "$UNIT did not start on $(readlink "$ROOT$PREFIX/current"): rolling back"
      rollback
      die "upgrade rolled back; see journalctl -u $UNIT"
    fi
    say "restarted $UNIT on $(readlink "$ROOT$PREFIX/current")"
  elif [ "$(can_interface)" = virtual ]; then
    say "not enabling $UNIT: $CONFIG still has can.interface = \"virtual\" (no BMS can reach it)."
    say "edit $CONFIG (can.interface = \"socketcan\", can.channel, the [sunspec] and [mqtt] links), then:"
    say "  $PREFIX/current/bin/bms-gateway check-config --config $CONFIG"
    say "  systemctl enable --now $UNIT"
  else
    "$SYSTEMCTL" enable --now "$UNIT"
    say "enabled and started $UNIT"
  fi
}

rollback() {
  [ -L "$ROOT$PREFIX/previous" ] || die "no previous version to roll back to ($PREFIX/previous)"
  local prev
  prev="$(readlink "$ROOT$PREFIX/previous")"
  [ -x "$ROOT$PREFIX/$prev/bin/bms-gateway" ] || die "$PREFIX/$prev is not a usable install"
  switch_to "$prev"
  say "rolled back to $prev"
  if have_systemctl && "$SYSTEMCTL" is-active --quiet "$UNIT"; then
    "$SYSTEMCTL" restart "$UNIT"
    say "restarted $UNIT"
  fi
}

main() {
  check_prerequisites
  if [ "${1:-}" = "--rollback" ]; then
    rollback
    return
  fi
  [ $# -eq 0 ] || die "unknown argument $1 (use --rollback, or nothing)"
  ensure_group
  install_config
  local rel
  rel="$(new_venv)"
  # Check the config with the new version before the service sees it.
  if ! "$ROOT$PREFIX/$rel/bin/bms-gateway" check-config --config "$ROOT$CONFIG" >/dev/null; then
    rm -rf "${ROOT:?}$PREFIX/$rel"
    die "the new version rejects $CONFIG (above); nothing was switched"
  fi
  switch_to "$rel"
  say "installed $("$ROOT$PREFIX/current/bin/bms-gateway" --version) in $PREFIX/$rel"
  install_unit
  install_network_file
  start_or_restart
  prune_venvs
  if [ -L "$ROOT$PREFIX/previous" ]; then
    say "previous version kept: $(readlink "$ROOT$PREFIX/previous") (sudo $0 --rollback)"
  fi
}

main "$@"
