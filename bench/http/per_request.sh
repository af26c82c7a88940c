#!/bin/bash
# per_request.sh -- what one GET /hello costs a server, in measures that the
# machine's load does not move: system calls per request (perf stat on the
# syscalls tracepoints while wrk loads it) and user-space instructions per
# request (callgrind, while fixed_client.py sends a fixed number of
# requests; the difference of two runs, so start-up and exit cancel out).
#
#   bench/http/per_request.sh syscalls SERVER [CONNS] [SECS]
#   bench/http/per_request.sh instructions SERVER [CONNS] [N1] [N2] [GAP_US]
#
# SERVER: build/release/examples/http_server or
# build/release/bench/http/uv_http_server (both take --port 0 --threads 1
# and print "listening on 127.0.0.1:PORT").  Needs perf (and tracepoint
# access: kernel.perf_event_paranoid <= 2 as root, or -1) and wrk for the
# first, valgrind for the second.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
MODE=$1 BIN=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ulimit -n "$(ulimit -Hn)"

start() { # start "$@": the server in the background; sets SRV and PORT
    "$@" --port 0 --threads 1 >"$TMP/out" 2>/dev/null &
    SRV=$!
    for _ in $(seq 600); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out")
        [ -n "$PORT" ] && return
        sleep 0.1
    done
    echo "per_request.sh: $1 did not start" >&2
    exit 1
}

if [ "$MODE" = syscalls ]; then
    C=${3:-100} S=${4:-4}
    start "$BIN"
    EV=raw_syscalls:sys_enter
    for s in recvfrom sendto read write epoll_wait epoll_pwait epoll_pwait2 \
             epoll_ctl accept4 close; do
        EV=$EV,syscalls:sys_enter_$s
    done
    perf stat -x, -e "$EV" -p "$SRV" -o "$TMP/perf" &
    PERF=$!
    sleep 0.3
    wrk -t1 -c"$C" -d"$S"s "http://127.0.0.1:$PORT/hello" >"$TMP/wrk"
    kill -INT $PERF
    wait $PERF || true
    kill -TERM $SRV
    wait $SRV || true
    REQ=$(awk '/requests in/{print $1}' "$TMP/wrk")
    echo "server=$(basename "$BIN") conns=$C secs=$S requests=$REQ"
    awk -F, -v r="$REQ" '$1 ~ /^[0-9]+$/ && $1 > 0 {
        sub(/^syscalls:sys_enter_/, "", $3); sub(/^raw_syscalls:sys_enter/, "all", $3)
        printf "  %-14s %10d  %.3f per request\n", $3, $1, $1 / r }' "$TMP/perf"
elif [ "$MODE" = instructions ]; then
    C=${3:-50} N1=${4:-2000} N2=${5:-12000} GAP=${6:-2000}
    for n in "$N1" "$N2"; do
        start valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$n" "$BIN"
        python3 "$HERE/fixed_client.py" "$PORT" "$C" "$n" "$GAP" >/dev/null
        kill -TERM $SRV
        wait $SRV || true
        IR[$n]=$(callgrind_annotate "$TMP/cg.$n" 2>/dev/null |
                 awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
    done
    echo "server=$(basename "$BIN") conns=$C gap_us=$GAP requests=$N1,$N2" \
         "Ir=${IR[$N1]},${IR[$N2]}" \
         "Ir_per_request=$(( (IR[$N2] - IR[$N1]) / (N2 - N1) ))"
else
    sed -n '2,18p' "$0"
    exit 2
fi
