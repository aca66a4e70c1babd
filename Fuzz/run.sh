#!/usr/bin/env bash
# Builds the libFuzzer targets (with AddressSanitizer) and runs them.
#
#   Fuzz/run.sh [SECONDS] [TARGET...]     default: 30 seconds each, every target
#
# Each target starts from its committed seeds (Fuzz/Corpus/TARGET, made by Fuzz/make_seeds.py)
# and writes what it finds to a scratch corpus (.build/fuzz-corpus/TARGET), never to the repo.
# The tokenizer and chat targets need the Qwen2.5 tokenizer: SPECULATE_FUZZ_MODEL, else the
# model cache's qwen2.5-coder-0.5b-instruct.gguf (`speculate models pull` fetches it).
# A crash, leak, timeout (-timeout=10) or broken property fails the run with the input saved
# in .build/fuzz-artifacts/ and a non-zero exit. The last line per target is libFuzzer's
# summary (executions, coverage); Docs/Security.md records the long runs.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(gguf tokenizer chat plugin-draft proposer-spec request json-schema); fi

swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -v "Cannot export local symbol" | tail -3
binary=.build/debug/SpeculateFuzz
cache=${SPECULATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/speculate}
export SPECULATE_FUZZ_MODEL=${SPECULATE_FUZZ_MODEL:-$cache/models/qwen2.5-coder-0.5b-instruct.gguf}
mkdir -p .build/fuzz-artifacts .build/fuzz-logs
# libFuzzer runs on one core: FUZZ_JOBS targets at once (default: one per core), each with a log
# and an exit status of its own, printed in order once all have finished.
jobs=${FUZZ_JOBS:-$(nproc)}
rm -f .build/fuzz-logs/*.status
# An interrupted run takes its fuzzers with it.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    (
        corpus=.build/fuzz-corpus/$target
        mkdir -p "$corpus"
        status=0
        SPECULATE_FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
            -artifact_prefix=.build/fuzz-artifacts/$target- "$corpus" "Corpus/$target" > ".build/fuzz-logs/$target.log" 2>&1 || status=$?
        echo "$status" > ".build/fuzz-logs/$target.status"
    ) &
done
wait
failed=0
for target in "${targets[@]}"; do
    echo "== $target ($seconds s)"
    grep -E "^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::number_of_executed_units|^stat::peak_rss|ERROR|SUMMARY|property violated|Test unit written|^Done" \
        ".build/fuzz-logs/$target.log" || true
    status=$(cat ".build/fuzz-logs/$target.status" 2>/dev/null || echo missing)
    if [ "$status" != 0 ]; then echo "fuzz target $target failed (exit $status; log: Fuzz/.build/fuzz-logs/$target.log)"; failed=1; fi
done
exit "$failed"
