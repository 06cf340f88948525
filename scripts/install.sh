# Source this file: Node >= 22 on PATH (see node24.sh) and node_modules matching package-lock.json.
# shellcheck source=node24.sh
source "$(dirname "${BASH_SOURCE[0]}")/node24.sh"
_iris_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$_iris_root/node_modules/.package-lock.json" ] || [ "$_iris_root/package-lock.json" -nt "$_iris_root/node_modules/.package-lock.json" ]; then
  echo "scripts/install.sh: installing dependencies (npm ci)" >&2
  (cd "$_iris_root" && npm ci --no-audit --no-fund) >&2
fi
unset _iris_root
