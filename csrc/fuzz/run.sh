#!/bin/sh
# Fuzz the header validation and the read/write paths of every ring kind with
# libFuzzer under ASan+UBSan (fuzz_attach.c says what is fuzzed and what not).
#
#   run.sh            short run for CI: FUZZ_SECONDS (default 45) of fuzz_attach,
#                     FUZZ_PY_SECONDS (default 15) of fuzz_python.py
#   run.sh --long     FUZZ_RUNS executions of fuzz_attach (default 1000000; about
#                     5 min here at ~3400 exec/s on one core), FUZZ_PY_RUNS of
#                     fuzz_python.py (default 200000; ~1000 exec/s)
#
# fuzz_python.py (atheris: the Python layer's attach path) runs when atheris can
# be imported, or installed as a wheel, by $PYTHON (default python3).
#
# The seed corpus is made fresh by make_seeds from real rings of every kind
# (so it follows the ABI); what the fuzzer finds is kept in bin/corpus for the
# next run.  A crash, a sanitizer report, a leak or a hang (-timeout) exits
# non-zero, and libFuzzer leaves the input as bin/crash-* (or timeout-*);
# replay it with: bin/fuzz_attach bin/crash-...
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
bin=$here/bin
CC=${FUZZ_CC:-clang}
CFLAGS="-std=c11 -Wall -Wextra -Werror -g -O1 -I$src"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
mode=${1:-short}

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"
	exit 1
fi
mkdir -p "$bin/corpus" "$bin/seeds" || exit 1
echo "== cc fuzz_attach (libFuzzer, ASan+UBSan)"
# shellcheck disable=SC2086  # the flag lists are meant to split
$CC $CFLAGS -fsanitize=fuzzer $SAN "$src"/*.c "$here/fuzz_attach.c" \
	-o "$bin/fuzz_attach" -lpthread -lrt || exit 1
# shellcheck disable=SC2086
$CC $CFLAGS "$src"/*.c "$here/make_seeds.c" -o "$bin/make_seeds" -lpthread -lrt || exit 1
rm -f "$bin"/seeds/seed-*
"$bin/make_seeds" "$bin/seeds" || exit 1

case $mode in
short) limit="-max_total_time=${FUZZ_SECONDS:-45}" ;;
--long|long) limit="-runs=${FUZZ_RUNS:-1000000}" ;;
*) echo "usage: $0 [--long]"; exit 2 ;;
esac

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
log=$bin/fuzz_attach.log
echo "== fuzz_attach $limit (log: $log)"
cd "$bin" || exit 1
# -timeout: one input runs in well under 1 ms; 10 s can only be a loop without bound.
# -max_len: the image of a small ring is two pages; four leave room to grow.
"$bin/fuzz_attach" $limit -timeout=10 -max_len=16384 -print_final_stats=1 \
	-artifact_prefix="$bin/" "$bin/corpus" "$bin/seeds" >"$log" 2>&1
rc=$?
grep -E '^#[0-9]+.*(pulse|DONE)|^Done|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" | tail -n 4
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|ERROR: libFuzzer' "$log"; then
	grep -E -A30 'ERROR: (Address|Leak)Sanitizer|runtime error:|ERROR: libFuzzer' "$log" | head -n 60
	[ "$rc" -eq 0 ] && rc=1
fi
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
if [ "$rc" -eq 0 ]; then
	echo "fuzz: fuzz_attach: ${execs:-?} executions, 0 crashes"
else
	echo "fuzz: fuzz_attach: FAILED (exit $rc) after ${execs:-?} executions"
fi

# The Python layer's attach path (atheris), when atheris can be had as a wheel.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import atheris' 2>/dev/null; then
	"$PY" -m pip install --quiet --only-binary=:all: atheris >/dev/null 2>&1
fi
if "$PY" -c 'import atheris, shmring' 2>/dev/null; then
	case $mode in
	short) pylimit="-max_total_time=${FUZZ_PY_SECONDS:-15}" ;;
	*) pylimit="-runs=${FUZZ_PY_RUNS:-200000}" ;;
	esac
	pylog=$bin/fuzz_python.log
	mkdir -p "$bin/corpus_py"
	echo "== fuzz_python.py $pylimit (log: $pylog)"
	"$PY" "$here/fuzz_python.py" $pylimit -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$bin/" "$bin/corpus_py" >"$pylog" 2>&1
	pyrc=$?
	pyexecs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$pylog")
	if [ "$pyrc" -eq 0 ]; then
		echo "fuzz: fuzz_python: ${pyexecs:-?} executions, 0 crashes"
	else
		tail -n 40 "$pylog"
		echo "fuzz: fuzz_python: FAILED (exit $pyrc) after ${pyexecs:-?} executions"
		rc=$pyrc
	fi
else
	echo "fuzz: fuzz_python skipped: atheris (or shmring) cannot be imported by $PY"
fi
leftover=$(ls /dev/shm 2>/dev/null | grep -E '^shmring\.fuzz\.')
if [ -n "$leftover" ]; then
	echo "fuzz: left in /dev/shm: $leftover"
	for f in $leftover; do rm -f "/dev/shm/$f"; done
	[ "$rc" -eq 0 ] && rc=1
fi
exit "$rc"
