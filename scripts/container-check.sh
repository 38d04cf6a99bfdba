#!/usr/bin/env bash
# The image as a user builds and runs it (`make container-check`; minutes, not part of `make test`):
#   1. docker build (host network), timed, with its layer sizes printed
#   2. docker run of the gateway on a port other than 6060, read-only root like the Kubernetes
#      manifest, with a tiny synthetic classifier generated here and mounted (HF offline)
#   3. the HEALTHCHECK turns healthy (it follows --port) and /health answers 200
#   4. a chat request goes through to a fake upstream on 127.0.0.1
#   5. the decision ledger in the /data volume is written: rows appear at /v1/decisions
#   6. docker stop (SIGTERM) with a stream in flight: the stream finishes, the exit status is 0
# Every container runs with --network host and every server binds 127.0.0.1.
#
# Without a Docker daemon it prints "skipped: docker not available" and exits 0; set
# REQUIRE_DOCKER=1 to make that exit 1 instead (CI). Any failed step exits 1.
#
# Environment: PIP_EXTRA_INDEX_URL  PyTorch's CPU wheel index, passed to the build (unset: the
#                                   CUDA build of torch, several GB)
#              IMAGE                tag to build and run (default routellm-gateway:check)
#              PYTHON               interpreter with the dev install (default .venv/bin/python)
#              KEEP=1               keep the container and the temp dir for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-routellm-gateway:check}
PYTHON=${PYTHON:-.venv/bin/python}
NAME=routellm-container-check-$$

say() { printf 'container-check: %s\n' "$*"; }
fail() {
    say "FAILED: $*"
    if [ -n "${started:-}" ]; then
        say "last lines of the container's log:"
        docker logs --tail 30 "$NAME" 2>&1 | sed 's/^/    /' || true
    fi
    exit 1
}

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    say "skipped: docker not available (no docker command, or its daemon does not answer)"
    [ "${REQUIRE_DOCKER:-0}" = 1 ] && exit 1
    exit 0
fi
[ -x "$PYTHON" ] || fail "no $PYTHON: run 'make install-dev' first, or set PYTHON"

tmp=$(mktemp -d)
upstream_pid=""
cleanup() {
    if [ -n "$upstream_pid" ]; then kill "$upstream_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then
        say "kept: container $NAME, $tmp"
    else
        docker rm -f -v "$NAME" >/dev/null 2>&1 || true
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { "$PYTHON" -c "import json, sys; doc = json.load(sys.stdin); print($1)"; }

# --- 1. build ------------------------------------------------------------------------------------
if [ -z "${PIP_EXTRA_INDEX_URL:-}" ]; then
    say "PIP_EXTRA_INDEX_URL is unset: the build installs torch's CUDA build (several GB)"
fi
say "docker build -t $IMAGE"
build_start=$(date +%s)
docker build --network host -t "$IMAGE" \
    --build-arg "PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-}" . >"$tmp/build.log" 2>&1 ||
    { tail -30 "$tmp/build.log"; fail "docker build (log above)"; }
say "built in $(($(date +%s) - build_start)) s; layers:"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110 | sed 's/^/    /'

# --- 2. the model, the fake upstream, the gateway ------------------------------------------------
chmod 755 "$tmp"  # the container runs as user 10001: it must read what is mounted from here
"$PYTHON" -c 'import sys; from classifier.synthetic import build_checkpoint; build_checkpoint(sys.argv[1])' \
    "$tmp/model"
chmod -R a+rX "$tmp/model"

upstream_port=$(free_port)
gateway_port=$(free_port)
"$PYTHON" -c '
import sys, uvicorn
from tests.gateway.fake_upstream import FakeUpstream
uvicorn.run(FakeUpstream(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
' "$upstream_port" &
upstream_pid=$!
cat >"$tmp/gateway.yaml" <<EOF
upstreams:
  fake: {base_url: "http://127.0.0.1:$upstream_port/v1"}
models:
  strong: {upstream: fake, model: "ok:strong"}
  weak: {upstream: fake, model: "ok:weak"}
  slow: {upstream: fake, model: slow-stream}
routing: {strong: strong, weak: weak, fallback: weak}
EOF
chmod a+r "$tmp/gateway.yaml"

say "docker run: routellm-gateway --port $gateway_port"
docker run -d --name "$NAME" --network host --read-only --tmpfs /tmp \
    -v "$tmp/model:/model:ro" -v "$tmp/gateway.yaml:/etc/routellm/gateway.yaml:ro" \
    -e ROUTELLM_CONFIG=/etc/routellm/gateway.yaml -e ROUTELLM_BERT_MODEL=/model \
    -e HF_HUB_OFFLINE=1 -e TRANSFORMERS_OFFLINE=1 -e ROUTELLM_LOG_FORMAT=json \
    "$IMAGE" routellm-gateway --host 127.0.0.1 --port "$gateway_port" >/dev/null
started=1
gateway=http://127.0.0.1:$gateway_port

# --- 3. healthy ----------------------------------------------------------------------------------
health=""
for _ in $(seq 1 180); do
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME")
    [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "the container exited"
    [ "$health" = healthy ] && break
    sleep 1
done
[ "$health" = healthy ] || fail "not healthy after 180 s (health: $health)"
curl -fsS "$gateway/health" >/dev/null || fail "GET /health"
say "healthy; /health 200 on port $gateway_port"

# --- 4. a chat request through to the upstream ---------------------------------------------------
answer=$(curl -fsS "$gateway/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "router", "messages": [{"role": "user", "content": "hello from the container check"}]}') ||
    fail "POST /v1/chat/completions"
content=$(json 'doc["choices"][0]["message"]["content"]' <<<"$answer")
case $content in *ok:strong* | *ok:weak*) ;; *) fail "unexpected answer: $answer" ;; esac
say "chat answered by the fake upstream: $content"

# --- 5. the ledger -------------------------------------------------------------------------------
rows=0
for _ in $(seq 1 30); do
    rows=$(curl -fsS "$gateway/v1/decisions" | json 'len(doc["data"])') || fail "GET /v1/decisions"
    [ "$rows" -ge 1 ] && break
    sleep 1
done
[ "$rows" -ge 1 ] || fail "no row at /v1/decisions after 30 s"
docker exec "$NAME" test -s /data/ledger.sqlite3 || fail "no /data/ledger.sqlite3 in the container"
say "ledger: $rows row(s) at /v1/decisions, in /data/ledger.sqlite3"

# --- 6. drain on docker stop ---------------------------------------------------------------------
curl -sS -N "$gateway/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]}' \
    >"$tmp/stream.txt" 2>&1 &
stream_pid=$!
sleep 0.7
stop_start=$(date +%s)
docker stop --time 40 "$NAME" >/dev/null
wait "$stream_pid" || fail "the stream in flight failed: $(cat "$tmp/stream.txt")"
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit status $code after docker stop"
grep -q '^data: \[DONE\]' "$tmp/stream.txt" || fail "the stream in flight did not finish: $(cat "$tmp/stream.txt")"
say "drained: the stream in flight finished, exit 0 after $(($(date +%s) - stop_start)) s"
say "passed"
