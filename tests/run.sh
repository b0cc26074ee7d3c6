#!/usr/bin/env bash
# run.sh: runs each test binary given, shows its output, and ends with the
# summed line "N passed, N failed". Exit status is non-zero when any test
# failed or a binary ended without its summary line.
set -uo pipefail
passed=0 failed=0 status=0
for bin in "$@"; do
    echo "== $bin"
    out=$(mktemp)
    $bin | tee "$out"   # unquoted: an entry may be "env VAR=x path"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "$bin: ended without a summary line (exit $rc)"
        failed=$((failed + 1)); status=1; continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -ne 0 ] && status=1
done
echo "$passed passed, $failed failed"
exit $status
