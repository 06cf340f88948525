#!/usr/bin/env bash
# One command on a fresh machine: installs Node 24 and the dependencies if needed, then runs every test.
# Tests use DATABASE_URL when set, else a Docker PostgreSQL when Docker answers, else embedded PGlite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
exec npm test
