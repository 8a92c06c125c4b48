# Sourced by the scripts that test a running system (browser-test.sh,
# api-conformance.sh): starts `gateway --embedded` on a free port of 127.0.0.1
# with one API key, waits until it is ready, and stops it by its PID when the
# script ends, however it ends. Builds nothing: the binary is $GATEWAY_BIN
# (default .build/debug/gateway).
#
#   start_embedded_gateway NAME SCOPES [more gateway arguments...]
#
# sets BASE_URL, TOKEN (the key's secret) and GATEWAY_PID; the gateway's log
# goes to $ARTIFACTS/NAME-gateway.log.

GATEWAY_BIN="${GATEWAY_BIN:-.build/debug/gateway}"
ARTIFACTS="${ARTIFACTS:-.build/artifacts}"
GATEWAY_PID=""

stop_gateway() {
    if [ -z "$GATEWAY_PID" ] || ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
        return 0
    fi
    kill -TERM "$GATEWAY_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$GATEWAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$GATEWAY_PID" 2>/dev/null; then
        echo "the gateway did not stop within 10 s of SIGTERM: SIGKILL" >&2
        kill -KILL "$GATEWAY_PID" 2>/dev/null || true
    fi
    wait "$GATEWAY_PID" 2>/dev/null || true
    GATEWAY_PID=""
}

start_embedded_gateway() {
    local name="$1" scopes="$2"
    shift 2
    if [ ! -x "$GATEWAY_BIN" ]; then
        echo "$name: no gateway binary at $GATEWAY_BIN (build it with swift build, or set GATEWAY_BIN)" >&2
        exit 2
    fi
    mkdir -p "$ARTIFACTS"
    local port log="$ARTIFACTS/$name-gateway.log"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
    BASE_URL="http://127.0.0.1:$port"
    trap stop_gateway EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    echo "$name: starting $GATEWAY_BIN on $BASE_URL (log: $log)"
    "$GATEWAY_BIN" --embedded --host 127.0.0.1 --port "$port" --api-key "$name:$scopes:$TOKEN" "$@" >"$log" 2>&1 &
    GATEWAY_PID=$!

    local deadline=$((SECONDS + 60))
    until curl -fsS --max-time 2 -o /dev/null "$BASE_URL/ready" 2>/dev/null; do
        if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
            echo "$name: the gateway exited before it was ready; its log:" >&2
            tail -n 40 "$log" >&2 || true
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$name: the gateway was not ready within 60 s; its log:" >&2
            tail -n 40 "$log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    echo "$name: the gateway is ready"
}
