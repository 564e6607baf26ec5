#!/bin/bash
# Run one libFuzzer harness over its corpus and report what it did.
#
#   test/fuzz/run.sh FUZZDIR NAME [libFuzzer options...]
#
# FUZZDIR/fuzz_NAME runs on FUZZDIR/corpus-NAME and adds the inputs that
# found new code there, so the next run starts where this one stopped. A
# crash, leak, timeout or failed check leaves its input in
# FUZZDIR/artifacts-NAME/ and fails with the report; the whole output is in
# FUZZDIR/NAME.log.
set -u

dir=$1 name=$2
shift 2
bin=$dir/fuzz_$name corpus=$dir/corpus-$name log=$dir/$name.log art=$dir/artifacts-$name/
mkdir -p "$corpus" "$art"

# Leaks are failures (ASan reports them per input under libFuzzer); UBSan
# stops at the first report (the code is also built -fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

start=$(date +%s%N)
"$bin" -print_final_stats=1 -artifact_prefix="$art" "$@" "$corpus" >"$log" 2>&1
rc=$?
secs=$(( ($(date +%s%N) - start) / 1000000000 ))

if [ $rc -ne 0 ]; then
	tail -n 80 "$log"
	echo "fuzz $name: FAILED (exit $rc) after ${secs} s; inputs in $art:"
	ls -t "$art" | head -5
	exit 1
fi
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
echo "fuzz $name: ${execs:-?} executions in ${secs} s (${rate:-?} exec/s)," \
	"corpus $(ls "$corpus" | wc -l) inputs, no crash"
grep -E '^(Done|stat::)' "$log"
