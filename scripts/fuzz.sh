#!/usr/bin/env bash
# Coverage-guided fuzzing of bootrig's parsers with AFL++ (cargo-afl, stable
# Rust). Builds the targets in fuzz/, seeds each corpus from the real serial
# logs in ../shared/fixtures (when present), the scenarios and fuzz/seeds,
# runs every target for SECONDS (default 60) and fails if any crashed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# BOOTRIG_FUZZ_PROFILE=dev builds unoptimised targets; the default,
# release, runs several times faster and builds no slower here (measured:
# 3m15s CPU release, 4m25s dev, for bootrig and its dependencies).
#
# Targets: ansi_split scenario crash timestamp (see fuzz/src/lib.rs).
# Findings and queues stay in target/fuzz/<target>/ between runs (each run
# resumes them); `fuzzer_stats` there holds execs_done, counted over every
# run of the queue.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ansi_split scenario crash timestamp)
case $seconds in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2 ;; esac

if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-afl (builds AFL++ too, about a minute)" >&2
    cargo install --locked cargo-afl@0.18.2 >&2
fi
# The AFL++ runtime for this rustc (cargo-afl builds it on first use).
cargo afl config --build >/dev/null 2>&1 || true

cd "$here/fuzz"
profile=${BOOTRIG_FUZZ_PROFILE:-release}
case $profile in
    dev) build=(); bindir=debug ;;
    release) build=(--release); bindir=release ;;
    *) echo "fuzz.sh: BOOTRIG_FUZZ_PROFILE is dev or release, not '$profile'" >&2; exit 2 ;;
esac
echo "fuzz.sh: building the targets (instrumented, $profile)" >&2
cargo afl build "${build[@]}" --quiet

out="$here/target/fuzz"
mkdir -p "$out"
# shared/fixtures/serial in the first ancestor holding it (../shared for
# the main checkout, ../../shared for a worktree).
fixtures=
for a in "$here/.." "$here/../.." "$here/../../.."; do
    [ -d "$a/shared/fixtures/serial" ] && { fixtures="$a/shared/fixtures/serial"; break; }
done

# seed DIR TARGET : writes the starting corpus of TARGET into DIR.
seed() {
    local dir=$1 target=$2 n=0 f
    mkdir -p "$dir"
    case $target in
        scenario)
            for f in $(find "$here/scenarios" "$here/tests" -name '*.json' -size -16k); do
                cp "$f" "$dir/$(basename "$f")"
            done ;;
        *)
            cp "$here"/fuzz/seeds/crash/* "$dir/" 2>/dev/null || true
            # 4 KB slices of the real serial logs (ansi_split: the first two
            # bytes are the cut lengths).
            for f in ${fixtures:+"$fixtures"/*.log}; do
                [ -f "$f" ] || continue
                split -b 4096 -d -a 3 "$f" "$dir/$(basename "$f" .log)-"
            done
            if [ "$target" = ansi_split ]; then
                for f in "$dir"/*; do
                    { printf '\x07\x3f'; cat "$f"; } > "$f.cut" && mv "$f.cut" "$f"
                done
            fi ;;
    esac
    for f in "$dir"/*; do n=$((n + 1)); done
    [ "$n" -gt 0 ] || printf 'x' > "$dir/empty"
}

export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
failed=0
for t in "${targets[@]}"; do
    [ -f "$here/fuzz/targets/$t.rs" ] || { echo "fuzz.sh: no target '$t' (fuzz/targets/)" >&2; exit 2; }
    dir="$out/$t"
    stats="$dir/default/fuzzer_stats"
    # execs_done in fuzzer_stats counts over every run of this queue.
    before=$(sed -n 's/^execs_done *: *//p' "$stats" 2>/dev/null || true)
    before=${before:-0}
    secs_before=$(sed -n 's/^run_time *: *//p' "$stats" 2>/dev/null || true)
    secs_before=${secs_before:-0}
    if [ -d "$dir/default/queue" ]; then
        input=-   # resume the previous queue
    else
        input="$dir/seeds"
        seed "$input" "$t"
    fi
    echo "fuzz.sh: $t for ${seconds}s" >&2
    cargo afl fuzz -V "$seconds" -i "$input" -o "$dir" -- "$here/fuzz/target/$bindir/$t" >"$dir.log" 2>&1 || {
        echo "fuzz.sh: afl-fuzz failed for $t (last lines of $dir.log):" >&2
        tail -n 20 "$dir.log" >&2
        exit 1
    }
    total=$(sed -n 's/^execs_done *: *//p' "$stats")
    # (execs_per_sec there is the queue's lifetime average: the run's rate
    # is the difference of the counters.)
    secs=$(sed -n 's/^run_time *: *//p' "$stats")
    secs=$((secs - secs_before))
    crashes=$(find "$dir/default/crashes" -type f ! -name README.txt 2>/dev/null | wc -l)
    echo "fuzz.sh: $t: $((total - before)) executions in this run, $(((total - before) / (secs > 0 ? secs : 1)))/s ($total in total on this queue), $crashes crash(es)"
    if [ "$crashes" -gt 0 ]; then
        failed=1
        find "$dir/default/crashes" -type f ! -name README.txt | head -n 5 | sed 's/^/  crash: /'
        echo "  replay: $here/fuzz/target/$bindir/$t < FILE" >&2
    fi
done
exit $failed
