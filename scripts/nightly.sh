#!/usr/bin/env bash
# A nightly bootrig job: run the scenarios, compare with the newest night
# whose tests all passed, publish the HTML pages. See docs/nightly.md.
#
# Usage: scripts/nightly.sh [NIGHTLY_DIR [PUBLISH_DIR]]
#   NIGHTLY_DIR  keeps every night's run folder (default target/nightly)
#   PUBLISH_DIR  gets report.html, compare.html, history.html, junit.xml
#                (default NIGHTLY_DIR/html)
#   BOOTRIG_SCENARIOS  scenario files or folders (default: scenarios)
#   BOOTRIG            the bootrig binary (default: bootrig on PATH)
# Exit status: 0 all passed and nothing regressed, 1 otherwise, 2 misuse.
set -uo pipefail

nightly=${1:-target/nightly}
publish=${2:-$nightly/html}
bootrig=${BOOTRIG:-bootrig}
mkdir -p "$nightly" "$publish" || exit 2

# 1. Run. A failed test is not the end of the job: the pages still matter.
"$bootrig" run --artifacts "$nightly" --junit "$publish/junit.xml" ${BOOTRIG_SCENARIOS:-scenarios}
run_status=$?
case $run_status in 0|1) ;; *) exit "$run_status" ;; esac  # bad scenario (2), signal (128+n)

# 2. Compare with the last good night (exit 2 there: no good night yet).
"$bootrig" compare --baseline latest-passing "$nightly" "$nightly/latest" \
    --html "$publish/compare.html"
compare_status=$?
if [ "$compare_status" -eq 2 ]; then
    echo "nightly: no earlier passing night to compare with" >&2
    compare_status=0
fi

# 3. Publish: the night's report (terminal text too) and the trend.
"$bootrig" report "$nightly/latest" --html "$publish/report.html" > "$publish/report.txt" || exit 2
"$bootrig" history "$nightly" --html "$publish/history.html" > "$publish/history.txt" || exit 2

[ "$run_status" -eq 0 ] && [ "$compare_status" -eq 0 ]
