#!/bin/sh
# tests/model/check.sh [OUTDIR] -- checks park.pml with spin: the protocol
# as written (sequentially consistent, and with TSO store buffers, with and
# without the membarrier) must pass; the deliberately broken variants must
# be caught.  Exit status 0 when every variant gives its expected verdict.
# Needs spin (Debian: apt-get install spin) and a C compiler.  ~2 min and
# ~0.5 GB per passing variant (9-12 million states).
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/fut-model}
mkdir -p "$out"
command -v spin >/dev/null || { echo "model: spin is not installed"; exit 2; }
status=0
check() { # check EXPECT NAME FLAGS...
    expect=$1 name=$2
    shift 2
    dir="$out/$name"
    rm -rf "$dir" && mkdir -p "$dir" && cp "$here/park.pml" "$dir/" || exit 2
    (cd "$dir" && spin "$@" -a park.pml >/dev/null &&
        ${CC:-cc} -O2 -DSAFETY -DCOLLAPSE -o pan pan.c &&
        nice -n 19 ./pan -m100000 >pan.out 2>&1)
    if grep -q "errors: 0" "$dir/pan.out"; then got=pass; else got=caught; fi
    states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' "$dir/pan.out")
    why=$(grep -m1 "assertion violated" "$dir/pan.out")
    if [ "$got" = "$expect" ]; then verdict=ok; else verdict=WRONG; status=1; fi
    printf '%-6s %-26s %-7s %9s states  %s\n' "$verdict" "$name" "$got" \
        "$states" "$why"
    if [ "$got" = caught ]; then
        (cd "$dir" && spin "$@" -t -p -g park.pml >trail.txt 2>&1)
    fi
}
check pass   sc
check pass   tso                 -DTSO
check pass   tso-no-membarrier   -DTSO -DBROKEN_NO_MEMBARRIER
check caught announce-late       -DBROKEN_ANNOUNCE_LATE
check caught no-recheck          -DBROKEN_NO_RECHECK
check caught clear-on-exit       -DBROKEN_CLEAR_ON_EXIT
check caught clear-before-read   -DBROKEN_CLEAR_BEFORE_READ
exit $status
