#!/usr/bin/env bash
# Runs hoard: installs redis-server and memcached if missing, builds, serves.
# Extra arguments go to `hoard serve` (e.g. --listen, --data-dir, --region).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
ensure_engines
go build -o bin/hoard ./cmd/hoard
exec bin/hoard serve "$@"
