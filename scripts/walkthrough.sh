#!/usr/bin/env bash
# The README's "Run a small network on one machine", end to end and unattended: the coordinator (scripts/start.sh),
# an account key, the generated tiny model's agent, then both asks with the key, each checked as the README says.
# Throw-away port (PORT, default 8080), database, model and keys; exits 0 when every step answered.
# test/walkthrough.test.ts runs it in the default test run and checks that the README's commands are the ones here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh

PORT="${PORT:-8080}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/iris-walkthrough.XXXXXX")"
# the newcomer's coordinator: embedded PostgreSQL in a fresh folder, whatever this shell points at
unset DATABASE_URL HOST IRIS_URL
export PORT DATA_DIR="$WORK/data" NODE_KEY_PATH="$WORK/tiny.key" COORDINATOR_URL="http://127.0.0.1:$PORT"
export IRIS_URL="$COORDINATOR_URL" XDG_CONFIG_HOME="$WORK/config"

set -m # each background step in its own process group, so that stopping it stops npm's children too
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap stop EXIT

step() { printf '\nwalkthrough: %s\n' "$*" >&2; }
fail() {
  printf 'walkthrough: FAILED: %s\n' "$1" >&2
  [ -n "${2:-}" ] && { echo "--- $2:" >&2; tail -n 40 "$2" >&2; }
  exit 1
}
# until_ok <seconds> <log to show on failure> <what> <command...>: polls the command every 0.2 s while the last
# background step lives
until_ok() {
  local seconds=$1 log=$2 what=$3
  shift 3
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || fail "$what: the process ended" "$log"
    sleep 0.2
  done
  fail "$what within $seconds s" "$log"
}

step "terminal 1: scripts/start.sh"
scripts/start.sh >"$WORK/coordinator.log" 2>&1 &
pids+=($!)
until_ok 120 "$WORK/coordinator.log" "the coordinator answers /healthz" curl -sf "http://127.0.0.1:$PORT/healthz"
until_ok 5 "$WORK/coordinator.log" "the coordinator prints the URLs to open" grep -q "open http://127.0.0.1:$PORT/chat and http://127.0.0.1:$PORT/dashboard" "$WORK/coordinator.log"
grep "open http://" "$WORK/coordinator.log" >&2

step "terminal 2: an account key"
export IRIS_ACCOUNT_KEY="$(bin/iris account generate)"
[[ "$IRIS_ACCOUNT_KEY" =~ ^[0-9]{4}\ [0-9]{4}\ [0-9]{4}\ [0-9]{4}$ ]] || fail "bin/iris account generate printed no key"

step "terminal 2: a node on the generated tiny model"
npm run fixtures:model -- "$WORK/tiny.gguf" >&2
NODE_ID=tiny IRIS_MODEL="$WORK/tiny.gguf" IRIS_THREADS=1 npm run agent >"$WORK/agent.log" 2>&1 &
pids+=($!)
until_ok 120 "$WORK/agent.log" "the agent registers" grep -q '"msg":"registered with the coordinator"' "$WORK/agent.log"

step "terminal 3: ask over gRPC with buf curl"
npx buf curl --protocol grpc --http2-prior-knowledge -H "x-iris-account-key: $IRIS_ACCOUNT_KEY" \
  -d '{"params":{"messages":[{"role":"ROLE_USER","content":"Translate hello to French"}],"maxTokens":32}}' \
  http://127.0.0.1:$PORT/iris.v1.InferenceService/Chat | tee "$WORK/grpc.out" || fail "buf curl failed" "$WORK/grpc.out"
grep -q '"accepted"' "$WORK/grpc.out" && grep -q '"token"' "$WORK/grpc.out" && grep -q '"done"' "$WORK/grpc.out" ||
  fail "the gRPC answer has accepted, token and done events" "$WORK/grpc.out"

step "terminal 3: ask the OpenAI-compatible API"
curl -N http://127.0.0.1:$PORT/v1/chat/completions -H "authorization: Bearer $IRIS_ACCOUNT_KEY" -H 'content-type: application/json' \
  -d '{"model":"auto","stream":true,"messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}' | tee "$WORK/openai.out" || fail "curl failed" "$WORK/openai.out"
grep -Eq '"finish_reason":"(length|stop)"' "$WORK/openai.out" && grep -q '^data: \[DONE\]' "$WORK/openai.out" ||
  fail "the OpenAI stream ends with finish_reason and [DONE]" "$WORK/openai.out"

step "every step answered"
