#!/usr/bin/env bash
# Line and branch coverage of the unit, integration and nemesis tests: builds with
# gcc --coverage in build-cov, runs those tests once, and writes docs/coverage.md (per
# file, from Debian's gcovr) and build-cov/coverage.html. Processes the tests kill -9
# write no coverage data; every other exit does.
#
#   scripts/coverage.sh            # about as long as the release test suite
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh || exit 1
dir=build-cov
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DSYNAPSE_COVERAGE=ON >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j "$(nproc)" 2>&1 | grep -E "warning|error|Error"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
find "$dir" -name '*.gcda' -delete
(cd "$dir" && ctest -j "$(nproc)" -L "unit|integration|nemesis" --output-on-failure) >"$dir.ctest.log" 2>&1
tests_status=$?
tail -n 4 "$dir.ctest.log"

# Project sources only: not the tests themselves, the test tools, or fetched code.
filters=(--root . --object-directory "$dir"
  --filter 'app/' --filter 'cluster/' --filter 'common/' --filter 'index/'
  --filter 'node/' --filter 'proto/wire' --filter 'router/' --filter 'tracker/'
  --exclude '.*_test\.c$' --exclude-unreachable-branches --exclude-throw-branches)
gcovr "${filters[@]}" --html-details "$dir/coverage.html" >/dev/null
{
  echo "# Test coverage"
  echo
  echo "Lines and branches of the project's C sources run by the unit, integration and"
  echo "nemesis tests (\`scripts/coverage.sh\`: gcc --coverage, Debian's gcovr"
  echo "$(gcovr --version | head -1 | awk '{print $2}'); unit test files excluded)."
  echo "Measured $(date -u +%Y-%m-%d); ctest: $(grep -E 'tests passed' "$dir.ctest.log" | tail -1)."
  echo
  echo '```'
  gcovr "${filters[@]}" --txt 2>/dev/null | sed -n '/^File/,$p'
  echo '```'
  echo
  echo '```'
  gcovr "${filters[@]}" --txt --branches 2>/dev/null | sed -n '/^File/,$p'
  echo '```'
} >docs/coverage.md
echo "coverage: docs/coverage.md, $dir/coverage.html"
exit $tests_status
