#!/bin/sh
# Check the configuration first so a bad key stops the container with one clear line, then run
# the command. The config is the one the command names (--config PATH or --config=PATH), else
# the image's /etc/bms-gateway/config.toml (mount yours there).
set -eu
config=/etc/bms-gateway/config.toml
prev=""
for arg in "$@"; do
  case "$arg" in
    --config=*) config="${arg#--config=}" ;;
  esac
  if [ "$prev" = "--config" ]; then config="$arg"; fi
  prev="$arg"
done
bms-gateway check-config --config "$config" >/dev/null
exec bms-gateway "$@"
