#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need (redis-server,
# memcached), checks formatting, vet and the generated code, then runs every
# test, with the race detector, against real engines and the real hoard binary.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
ensure_engines

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go run ./internal/ecapi/gen -check
go test -race -count=1 -timeout 20m ./...
