#!/usr/bin/env bash
# Run one test program.
#   run-test.sh [--redis STATE_DIR] COMMAND [ARGS...]
# --redis exports the fixture server's location (REDKIT_TEST_HOST/PORT/SOCKET).
# REDKIT_TEST_WRAPPER, when set, prefixes the command (e.g. "valgrind --error-exitcode=99").
set -euo pipefail
if [ "${1:-}" = "--redis" ]; then
    state=$2
    shift 2
    [ -f "$state/env" ] || { echo "no redis fixture in $state (run the test through ctest)" >&2; exit 1; }
    set -a
    # shellcheck disable=SC1091
    . "$state/env"
    set +a
fi
# shellcheck disable=SC2086
exec ${REDKIT_TEST_WRAPPER:-} "$@"
