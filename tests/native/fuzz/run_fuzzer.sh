#!/usr/bin/env bash
# Fuzz the malloc library's entry points (heap_fuzz.c) with libFuzzer for
# SECONDS (default 60) under each GUARDALLOC_OPTIONS set below, starting from
# the checked-in corpus; new inputs go to $OUT (default a temporary
# directory); crashes are written there as crash-*. Needs clang (clang-19, or
# $CLANG).
#   tests/native/fuzz/run_fuzzer.sh 300
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../../../src/guardalloc/_c"
seconds="${1:-60}"
clang="${CLANG:-$(command -v clang-19 || command -v clang)}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out/corpus"
# The library's sources are compiled into the target, so its malloc is this
# program's (as under LD_PRELOAD) and libFuzzer's coverage reaches it.
"$clang" -g -O1 -fsanitize=fuzzer,undefined -fno-sanitize-recover=undefined -fno-builtin -fvisibility=hidden -pthread \
    -o "$out/heap_fuzz" "$here/heap_fuzz.c" "$src"/*.c ${EXTRA_SOURCES:-} -ldl -lgcc_s
for options in "sample_rate=1" "sample_rate=1:alignment=1" "sample_rate=3:align=left" "sample_rate=1:uaf=1:quarantine=8"; do
    echo "fuzz: GUARDALLOC_OPTIONS=$options for ${seconds}s"
    GUARDALLOC_OPTIONS="$options" "$out/heap_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -max_len=720 -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" "$here/corpus" 2>&1 \
        | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR|heap_fuzz:|SUMMARY)' || true
done
echo "fuzz: new inputs in $out/corpus"
ls "$out"/crash-* "$out"/timeout-* 2>/dev/null && exit 1
exit 0
