#!/usr/bin/env bash
# Start a Docker engine when none answers (these machines have no systemd), then wait for it.
set -euo pipefail

log=${WABIZ_DOCKERD_LOG:-/var/log/wabiz-dockerd.log}
if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd is not installed: run 'make deps' (installs Debian's docker.io)" >&2
  exit 1
fi
echo "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
