#!/usr/bin/env bash
# `make check-faults`: the fault loops too long for `make check`, against one throwaway
# PostgreSQL 15: rewinds at random points of the workload with a 2,000,000-row transaction, for
# several seeds and more rewinds each (tests/integration/test_rewind.c); before them, a plugin
# loaded many times through a link in its path that another user flips (tests/unit/test_loader.c);
# then many failures named late: 60 bad rows among 3,000 transactions, and 50 refused parts of a
# 20,000-row transaction and of a webhook's 1,000-row one (tests/integration/test_latefail.c,
# case "many"); and the initial snapshot's tests (a writer at the seam, kill -9, a rewind, a
# standby) over a table of 100,000 rows (tests/integration/test_snapshot_run.c).
#
#   WN_TEST_FLIP_TRIES  loads through the flipped link (default 20000)
#   WN_REWIND_ROUNDS  rounds, each with the next seed (default 3)
#   WN_REWIND_MAX     rewinds per round (default 6)
#   WN_FAULT_SEED     the first round's seed (default: from the clock, printed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
HARNESS=$ROOT/tests/pg-harness.sh
export WN_REWIND_ROUNDS=${WN_REWIND_ROUNDS:-3}
export WN_REWIND_MAX=${WN_REWIND_MAX:-6}
# Every event the requester handles is logged, and the delivery invariant checked over the log.
export WN_REWIND_EVENT_LOG=${WN_REWIND_EVENT_LOG:-1}

FLIP_TRIES=${WN_TEST_FLIP_TRIES:-20000}
echo "== check-faults: $FLIP_TRIES loads through a link another user flips"
CK_RUN_CASE=flip WN_TEST_FLIP_TRIES=$FLIP_TRIES "$ROOT/build/tests/test_loader" ||
    { echo "== check-faults FAILED: a plugin was loaded through another user's link"; exit 1; }

PGDIR=$(mktemp -d /tmp/walnotify-pg.XXXXXX)
cleanup() {
    "$HARNESS" stop "$PGDIR" || echo "check-faults.sh: could not stop the server in $PGDIR" >&2
}
trap cleanup EXIT
"$HARNESS" start "$PGDIR" >/dev/null
# shellcheck disable=SC1091
. "$PGDIR/env"
export WN_TEST_PGDIR=$PGDIR WN_ROOT=$ROOT

echo "== check-faults: $WN_REWIND_ROUNDS rounds of $WN_REWIND_MAX rewinds (PostgreSQL on $PGHOST)"
if "$ROOT/build/tests/itest_rewind" &&
    CK_RUN_CASE=many WN_LATEFAIL_ROWS=3000 WN_LATEFAIL_BAD_EVERY=50 WN_LATEFAIL_BIG_ROWS=20000 \
        WN_LATEFAIL_PARTS=50 WN_LATEFAIL_HOOK_PARTS=50 WN_LATEFAIL_FROM_HANDLE=1 \
        "$ROOT/build/tests/itest_latefail" &&
    WN_SNAPSHOT_ROWS=100000 "$ROOT/build/tests/itest_snapshot_run"; then
    echo "== check-faults passed"
else
    echo "== check-faults FAILED; the server's log ends with:"
    tail -n 30 "$PGDIR/postgresql.log" 2>/dev/null || true
    exit 1
fi
