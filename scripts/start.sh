#!/usr/bin/env bash
# One command on a fresh machine: installs Node 24 and the dependencies if needed, then starts the coordinator on
# 127.0.0.1 (embedded PostgreSQL under data/ unless DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
# this machine only, unless HOST says otherwise (HOST=0.0.0.0 for every interface): a first start should not
# offer anonymous chat to the whole network. The coordinator prints the URLs to open once it listens.
export HOST="${HOST:-127.0.0.1}"
exec npm start
