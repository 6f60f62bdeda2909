#!/usr/bin/env bash
# Static checks beyond the test suite: staticcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go
command -v staticcheck >/dev/null 2>&1 || go install honnef.co/go/tools/cmd/staticcheck@latest
staticcheck ./...
