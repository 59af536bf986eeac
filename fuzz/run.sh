#!/usr/bin/env bash
# Builds the fuzz targets (build.sh) and runs each for a bounded time. Exits non-zero when a
# target crashes; the crashing input is left in fuzz/artifacts/<target>/.
#   FUZZ_TIME=30     seconds per target (default 30)
#   FUZZ_TARGETS="…" which targets (default: all ten)
#   FUZZ_JOBS=1      parallel libFuzzer jobs per target
#   extra arguments are passed to every libFuzzer run (e.g. -max_len=8192)
set -uo pipefail
cd "$(dirname "$0")"
TIME="${FUZZ_TIME:-30}"
TARGETS="${FUZZ_TARGETS:-protocol_parse auth_tokens http_origin https_location hub_offer hub_candidate hub_receive clipboard_chunks file_names upload_tickets}"
JOBS="${FUZZ_JOBS:-1}"
TRIPLE="${FUZZ_TARGET_TRIPLE:-$(rustc -vV | sed -n 's/^host: //p')}"
./build.sh || exit 1
BIN="target/$TRIPLE/release"
failed=()
for t in $TARGETS; do
    corpus="target/corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    echo "=== fuzzing $t for ${TIME}s"
    # The first directory receives new inputs; the committed seeds are only read.
    args=(-max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="artifacts/$t/" "$@" "$corpus" "seeds/$t")
    if [ "$JOBS" -gt 1 ]; then
        args=(-jobs="$JOBS" -workers="$JOBS" "${args[@]}")
    fi
    # libFuzzer's per-input progress lines are dropped; stats and any crash report remain.
    "$BIN/$t" "${args[@]}" 2>&1 | grep --line-buffered -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)|NEW_FUNC'
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "!!! $t failed (exit $rc); crashing input, if any, in fuzz/artifacts/$t/"
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz: all targets ran ${TIME}s without a crash"
