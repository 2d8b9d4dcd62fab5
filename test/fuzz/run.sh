#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds the libFuzzer targets with clang (ASan+UBSan) in build-fuzz/ and
# runs each for SECONDS_PER_TARGET seconds (default 600), one after the
# other (or LOOPSNAP_FUZZ_PARALLEL at a time), each on a fresh working corpus copied from its seeds
# (test/fuzz/corpus/<target>/) and regression inputs
# (test/fuzz/regressions/<target>/); the committed files are never written.
# TARGETs are names such as mount-spec (default: every target with a seed
# corpus). Prints, per target and in total: executions, executions per
# second, coverage (libFuzzer's cov: edges and ft: features) and crashes.
# Exits 1 if any target crashed, leaked, timed out or ran out of memory;
# the inputs are saved in the directory it names (docs/fuzzing.md says how
# to turn one into a regression test).
#
# Environment: LOOPSNAP_FUZZ_OUT (default /var/tmp/loopsnap-fuzz.<time>)
# for the working corpora, logs and crashing inputs; LOOPSNAP_FUZZ_JOBS for
# the build's parallelism (default 2); LOOPSNAP_FUZZ_PARALLEL for how many
# targets run at once (default 1).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
fuzz=$src/test/fuzz
build=$src/build-fuzz
secs=${1:-600}
[[ $# -gt 0 ]] && shift
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs == 0)); then
        echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
        exit 2
fi

if (($# > 0)); then
        targets=("$@")
else
        mapfile -t targets < <(find "$fuzz/corpus" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' |
                sort)
fi
for t in "${targets[@]}"; do
        [[ -d $fuzz/corpus/$t ]] || {
                echo "unknown target '$t' (no $fuzz/corpus/$t)" >&2
                exit 2
        }
done

# clang with libFuzzer and the sanitizer runtimes (Debian 12: clang 14).
if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
        echo "== installing clang and libclang-rt-14-dev"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi

echo "== building ${#targets[@]} targets in $build"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLOOPSNAP_FUZZ=ON -DLOOPSNAP_TESTS=OFF >"$build/run-cmake.log" 2>&1 || {
        cat "$build/run-cmake.log"
        exit 1
}
cmake --build "$build" -j "${LOOPSNAP_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz-}" \
        >"$build/run-build.log" 2>&1 || {
        tail -50 "$build/run-build.log"
        exit 1
}

out=${LOOPSNAP_FUZZ_OUT:-/var/tmp/loopsnap-fuzz.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
echo "== ${secs}s per target; working corpora, logs and crashing inputs in $out"

# Stop at the first error of any kind, report leaks, keep symbolised stacks.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1:symbolize=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:report_error_type=1

# run_one TARGET: one target for $secs seconds; its summary line goes to
# $out/TARGET/summary, its report to standard output when it is done.
run_one() {
        local t=$1 dir=$out/$1 rc=0 start elapsed execs rate last cov ft crashes line report
        rm -rf "$dir"
        mkdir -p "$dir/corpus" "$dir/crashes"
        cp -r "$fuzz/corpus/$t/." "$dir/corpus/"
        [[ -d $fuzz/regressions/$t ]] && cp -r "$fuzz/regressions/$t/." "$dir/corpus/"
        local args=(-max_total_time="$secs" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048
                -artifact_prefix="$dir/crashes/")
        [[ -f $fuzz/dict/$t.dict ]] && args+=(-dict="$fuzz/dict/$t.dict")
        echo "== fuzz-$t: $build/fuzz/fuzz-$t ${args[*]} $dir/corpus"
        start=$SECONDS
        # The working corpus comes first: libFuzzer adds new inputs to it.
        "$build/fuzz/fuzz-$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
        elapsed=$((SECONDS - start))

        execs=$(grep -a '^stat::number_of_executed_units:' "$dir/log" | tail -1 | tr -dc 0-9)
        rate=$(grep -a '^stat::average_exec_per_sec:' "$dir/log" | tail -1 | tr -dc 0-9)
        last=$(grep -a -E '^#[0-9]+.*cov: ' "$dir/log" | tail -1 || true)
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
        crashes=$(find "$dir/crashes" -type f | wc -l)
        if ((rc != 0 && crashes == 0)); then
                crashes=1 # died without an artifact (e.g. killed): still a failure
        fi
        : "${execs:=0}" "${rate:=0}" "${cov:=?}" "${ft:=?}"
        # libFuzzer says 0 when it stopped (crashed) within its first second.
        if ((rate == 0 && elapsed > 0)); then
                rate=$((execs / elapsed))
        fi
        line=$(printf '%-12s execs %10s  exec/s %7s  cov %5s  ft %6s  crashes %s  (%ss)' \
                "$t" "$execs" "$rate" "$cov" "$ft" "$crashes" "$elapsed")
        echo "$line" >"$dir/summary"
        echo "$execs $crashes" >"$dir/counts"
        report=$line
        if ((crashes > 0)); then
                report+=$'\n'$(grep -a -E 'ERROR: |invariant failed|runtime error|SUMMARY' "$dir/log" | head -5 || true)
                for f in "$dir"/crashes/*; do
                        [[ -e $f ]] && report+=$'\n'"   input: $f (reproduce: $build/fuzz/fuzz-$t $f)"
                done
                report+=$'\n'"   log: $dir/log"
        fi
        echo "$report"
}

# LOOPSNAP_FUZZ_PARALLEL targets at a time (default 1: one after the other).
parallel=${LOOPSNAP_FUZZ_PARALLEL:-1}
if ! [[ $parallel =~ ^[0-9]+$ ]] || ((parallel == 0)); then
        echo "LOOPSNAP_FUZZ_PARALLEL='$parallel': expected a number >= 1" >&2
        exit 2
fi
running=0
for t in "${targets[@]}"; do
        if ((running >= parallel)); then
                wait -n || true
                running=$((running - 1))
        fi
        run_one "$t" &
        running=$((running + 1))
done
wait || true

total_execs=0 total_crashes=0
summary=()
for t in "${targets[@]}"; do
        read -r execs crashes <"$out/$t/counts" || { execs=0; crashes=1; }
        summary+=("$(cat "$out/$t/summary" 2>/dev/null || echo "$t: no result")")
        total_execs=$((total_execs + execs))
        total_crashes=$((total_crashes + crashes))
done

echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
printf '%-12s execs %10s  crashes %s\n' total "$total_execs" "$total_crashes"
if ((total_crashes > 0)); then
        echo "== crashing inputs are in $out/<target>/crashes/"
        exit 1
fi
