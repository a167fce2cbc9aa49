#!/bin/sh
# Check the configuration first so a bad key stops the container with one clear line.
set -eu
config=/etc/bms-gateway/config.toml
prev=""
for arg in "$@"; do
  if [ "$prev" = "--config" ]; then config="$arg"; fi
  prev="$arg"
done
bms-gateway check-config --config "$config" >/dev/null
exec bms-gateway "$@"
