#!/usr/bin/env bash
# One command on a fresh machine: installs Node 24 and the dependencies if needed, then starts the coordinator
# (embedded PostgreSQL under data/ unless DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
exec npm start
