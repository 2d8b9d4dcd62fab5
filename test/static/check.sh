#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The static checks (docs/development.md, "Static analysis"), run by CI
# (.ci/run) on the normal build:
#
#   tidy      clang-tidy (.clang-tidy) over every project .c file, through
#             the build's compile_commands.json, nproc files at a time;
#   cppcheck  cppcheck over the same files (warning, style, performance,
#             portability), suppressions in test/static/cppcheck.supp;
#   valgrind  memcheck over the unit test binaries (build/test/test-unit-*),
#             following Criterion's worker processes: no memory error, no
#             definite or indirect leak (test/static/valgrind.supp: library
#             noise only).
#
#   test/static/check.sh                 all three
#   test/static/check.sh tidy cppcheck   only these
#   LOOPSNAP_STATIC_BUILD=dir            build directory (default: build, as
#                                        ./test.sh configures it)
#
# Installs what is missing (./setup.sh), configures and builds the build
# directory like ./test.sh, and exits non-zero on any finding of any check.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
static=$top/test/static
builddir=${LOOPSNAP_STATIC_BUILD:-build}
jobs=$(nproc)

checks=("$@")
[ "${#checks[@]}" -gt 0 ] || checks=(tidy cppcheck valgrind)
for c in "${checks[@]}"; do
  case "$c" in
  tidy | cppcheck | valgrind) ;;
  *)
    echo "check.sh: unknown check '$c' (tidy, cppcheck, valgrind)" >&2
    exit 2
    ;;
  esac
done

./setup.sh

# The normal build (no sanitizers: valgrind cannot run ASan binaries), with
# compile_commands.json (CMAKE_EXPORT_COMPILE_COMMANDS in CMakeLists.txt).
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOOPSNAP_WERROR=ON -DLOOPSNAP_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j "$jobs"
db=$builddir/compile_commands.json

out=$(mktemp -d "${TMPDIR:-/tmp}/loopsnap-static.XXXXXX")
trap 'rm -rf "$out"' EXIT

# Every .c file in git must be in the compilation database: a file the build
# does not compile would silently escape clang-tidy and cppcheck.
mapfile -t files < <(python3 -c 'import json,os,sys
for e in json.load(open(sys.argv[1])):
    print(os.path.relpath(os.path.join(e["directory"], e["file"])))' "$db" | sort -u)
mapfile -t missing < <(comm -23 <(git ls-files '*.c' | sort) <(printf '%s\n' "${files[@]}"))
if [ "${#missing[@]}" -gt 0 ]; then
  echo "check.sh: not in $db (not built?): ${missing[*]}" >&2
  exit 1
fi

failed=()

run_tidy() {
  local tidy=${CLANG_TIDY:-clang-tidy-14}
  command -v "$tidy" >/dev/null || tidy=clang-tidy
  echo "=== clang-tidy: ${#files[@]} files, $jobs at a time ($("$tidy" --version | grep -m1 -o 'version [0-9.]*')) ==="
  mkdir -p "$out/tidy"
  # One log per file; a file fails if clang-tidy exits non-zero (every
  # warning is an error: WarningsAsErrors in .clang-tidy).
  local rc=0
  # Biggest files first: the run does not end waiting for one large file.
  # shellcheck disable=SC2016 # expanded by sh -c
  stat -c '%s %n' "${files[@]}" | sort -rn | cut -d' ' -f2- | xargs -P "$jobs" -I{} sh -c '
    log="$2/tidy/$(echo "$3" | tr / _).log"
    if ! "$1" -p "$4" --quiet "$3" >"$log" 2>&1; then
      mv "$log" "$log.failed"
    fi' sh "$tidy" "$out" {} "$builddir" || rc=$?
  local bad
  bad=$(find "$out/tidy" -name '*.failed' | sort)
  if [ -n "$bad" ] || [ "$rc" -ne 0 ]; then
    # shellcheck disable=SC2086
    grep -hv '^[0-9]* warnings\? \(and [0-9]* errors\? \)\?generated\.$' $bad || true
    echo "clang-tidy: findings in $(echo "$bad" | grep -c .) files"
    return 1
  fi
  echo "clang-tidy: clean"
}

run_cppcheck() {
  echo "=== cppcheck: ${#files[@]} files ($(cppcheck --version)) ==="
  # --project reads the include paths and -D flags of each file. System
  # headers are not read: criterion.cfg describes Criterion's macros.
  if ! cppcheck --project="$db" \
    -j "$jobs" --library=posix --library=gnu --library="$static/criterion.cfg" \
    --enable=warning,style,performance,portability \
    --inline-suppr --suppressions-list="$static/cppcheck.supp" \
    --error-exitcode=1 --quiet \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]\n{code}'; then
    echo "cppcheck: findings above"
    return 1
  fi
  echo "cppcheck: clean"
}

# One unit test program under memcheck; the verdict is read from the logs.
vg_one() {
  local t=$1 name vrc=0
  name=$(basename "$t")
  mkdir -p "$out/vg/$name"
  # Criterion runs each test in a worker it re-executes from the binary:
  # --trace-children follows those (not the system programs a test may
  # run). One log per process; leaks of kinds definite and indirect count
  # as errors. (No --track-origins: it doubles the time; add it when
  # chasing an uninitialised value, docs/development.md.)
  valgrind --tool=memcheck --trace-children=yes \
    --trace-children-skip='/usr/*,/bin/*,/sbin/*' \
    --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --suppressions="$static/valgrind.supp" \
    --log-file="$out/vg/$name/%p.log" \
    "$t" --jobs 1 >"$out/vg/$name.out" 2>&1 || vrc=$?
  echo "$vrc" >"$out/vg/$name.rc"
}

run_valgrind() {
  mapfile -t tests < <(find "$builddir/test" -maxdepth 1 -name 'test-unit-*' -type f -executable | sort)
  if [ "${#tests[@]}" -eq 0 ]; then
    echo "valgrind: no unit test binaries in $builddir/test" >&2
    return 1
  fi
  echo "=== valgrind memcheck: ${#tests[@]} unit test programs, $jobs at a time ($(valgrind --version)) ==="
  local t name rc=0 running=0 n bad vrc
  for t in "${tests[@]}"; do
    vg_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
      wait -n || true
      running=$((running - 1))
    fi
  done
  wait
  for t in "${tests[@]}"; do
    name=$(basename "$t")
    n=$(find "$out/vg/$name" -name '*.log' | wc -l)
    bad=$(grep -L 'ERROR SUMMARY: 0 errors' "$out/vg/$name"/*.log || true)
    vrc=$(cat "$out/vg/$name.rc" 2>/dev/null || echo "none")
    if [ "$vrc" != 0 ] || [ "$n" -eq 0 ] || [ -n "$bad" ]; then
      echo "$name: FAILED under valgrind (exit $vrc):"
      cat "$out/vg/$name.out"
      # shellcheck disable=SC2086
      [ -z "$bad" ] || cat $bad
      rc=1
    else
      echo "$name: $(grep -o 'Tested: [0-9]*' "$out/vg/$name.out"), $n processes, 0 errors"
    fi
  done
  [ "$rc" -eq 0 ] && echo "valgrind: clean"
  return "$rc"
}

for c in "${checks[@]}"; do
  start=$SECONDS
  if ! "run_$c"; then
    failed+=("$c")
  fi
  echo "($c: $((SECONDS - start)) s)"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "static checks FAILED: ${failed[*]}"
  exit 1
fi
echo "static checks passed: ${checks[*]}"
