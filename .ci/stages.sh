# Stage timing for the CI scripts (sourced): `stage NAME COMMAND...` runs one stage, records its
# wall time, and `stage_report` prints every stage's time and the total, so the next person sees
# where the budget goes. A failing stage stops the run (set -e) after its time is printed.
stage_names=()
stage_seconds=()
stage_started=$(date +%s)

stage() {
    local name=$1 start status=0
    shift
    echo "=== stage: $name"
    start=$(date +%s)
    # In a subshell of its own with -e: a function run as `cmd || ...` would ignore -e inside.
    set +e
    (set -e; "$@")
    status=$?
    set -e
    stage_names+=("$name")
    stage_seconds+=($(($(date +%s) - start)))
    echo "=== stage: $name took $(($(date +%s) - start)) s (exit $status)"
    if [ "$status" -ne 0 ]; then stage_report; return "$status"; fi
}

stage_report() {
    local i total=$(($(date +%s) - stage_started))
    echo "=== time per stage (CPU: $(grep -o 'avx512_vnni\|avx_vnni\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')$(nproc) cores)"
    for i in "${!stage_names[@]}"; do
        awk -v name="${stage_names[$i]}" -v s="${stage_seconds[$i]}" 'BEGIN { printf "  %-30s %5d s  %5.1f min\n", name, s, s / 60 }'
    done
    awk -v s="$total" 'BEGIN { printf "  %-30s %5d s  %5.1f min\n", "total", s, s / 60 }'
}
