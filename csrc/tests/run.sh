#!/bin/sh
# Build the C tests against csrc/*.c and run them under the sanitizers:
#   test_ring            ASan+UBSan, then the plain -O2 build
#   stress_spsc          TSan, ASan+UBSan, then the plain -O2 build
#   stress_wait          TSan (two threads, one mapping; the RMW handshake), then the
#                        plain -O2 build (two processes, membarrier handshake, shutdown
#                        and dead-peer wake-ups), then -O2 with the RMW handshake
#   stress_mpmc          TSan, ASan+UBSan, then the plain -O2 build (MPMC and locked
#                        kinds, P producer x C consumer threads over one mapping)
# Every build is -Wall -Wextra -Werror.  Exits non-zero on any failure, any
# sanitizer report, or any segment a test left in /dev/shm.
#
# Message counts per stress configuration (stress_spsc -n / -r):
#   TSAN_MESSAGES=150000 TSAN_STREAMS=1000   20-30 s on 2 cores (cap=1 hand-offs dominate)
#   STRESS_MESSAGES=2000000                  the default profile, under ASan: 25-50 s
#   PLAIN_MESSAGES=500000                    the -O2 build: real code generation
# Hand-offs per capacity (1 and 2) for stress_wait -n, nearly all through a
# futex sleep (a cross-CPU wake-up costs ~30 us here, two per hand-off at cap 1):
#   WAIT_TSAN_HANDOFFS=100000                TSan, threads: 10-20 s
#   WAIT_HANDOFFS=600000                     -O2, processes: 40-60 s on 2 cores (10^6: 80-95 s)
#                                            (the membarrier handshake, wait.c)
#   WAIT_RMW_HANDOFFS=100000                 -O2, -DSHMRING_WAIT_RMW: the fallback, 10-25 s
# Messages per stress_mpmc configuration (-n; 80 configurations, wait mode n/4
# under TSan, n/16 otherwise, plus 300 / 2000 short streams):
#   MPMC_TSAN_MESSAGES=15000                 TSan: 20-30 s on 2 cores
#   MPMC_MESSAGES=100000                     ASan: 20-42 s
#   MPMC_PLAIN_MESSAGES=100000               -O2: 18-30 s
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
bin=$here/bin
CC=${CC:-gcc}
CFLAGS_ALL="-std=c11 -Wall -Wextra -Werror -I$src"
ASAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
TSAN="-O1 -g -fsanitize=thread -fno-omit-frame-pointer"
PLAIN="-O2"
TSAN_MESSAGES=${TSAN_MESSAGES:-150000}
TSAN_STREAMS=${TSAN_STREAMS:-1000}
STRESS_MESSAGES=${STRESS_MESSAGES:-2000000}
PLAIN_MESSAGES=${PLAIN_MESSAGES:-500000}
WAIT_TSAN_HANDOFFS=${WAIT_TSAN_HANDOFFS:-100000}
WAIT_HANDOFFS=${WAIT_HANDOFFS:-600000}
WAIT_RMW_HANDOFFS=${WAIT_RMW_HANDOFFS:-100000}
MPMC_TSAN_MESSAGES=${MPMC_TSAN_MESSAGES:-15000}
MPMC_MESSAGES=${MPMC_MESSAGES:-100000}
MPMC_PLAIN_MESSAGES=${MPMC_PLAIN_MESSAGES:-100000}

# Ours first, so that options already in the environment override them.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

failed=0
summary=""
mkdir -p "$bin" || exit 1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

build() {   # build NAME FLAGS SOURCE
	echo "== cc $1"
	# shellcheck disable=SC2086  # the flag lists are meant to split
	if ! $CC $CFLAGS_ALL $2 "$src"/*.c "$here/$3" -o "$bin/$1" -lpthread -lrt; then
		echo "== cc $1: FAILED"
		failed=1
		return 1
	fi
}

# Run one binary with its output streamed and kept, then judge it: exit code
# (77 = skipped), sanitizer reports, segments left behind by its pid.
run_one() {   # run_one LABEL CMD...
	label=$1
	shift
	log=$bin/$label.log
	t0=$(now)
	echo "== $label: $*"
	: >"$log"     # before tail opens it, not in the child after a fork
	"$@" >>"$log" 2>&1 &
	pid=$!
	tail -s 0.2 -n +1 --pid=$pid -f "$log"
	wait $pid
	rc=$?
	if grep -q 'unexpected memory mapping' "$log" && [ -z "${no_aslr:-}" ]; then
		# TSan's shadow layout cannot take every randomised mmap base that
		# recent kernels (vm.mmap_rnd_bits > 28) hand out: ASLR off and again.
		echo "== $label: TSan mapping conflict, rerunning with setarch -R"
		no_aslr=1 run_one "$label" setarch "$(uname -m)" -R "$@"
		return
	fi
	leftover=$(ls /dev/shm 2>/dev/null | grep -E "^shmring\.(test_ring|stress)\.$pid\.")
	if [ -n "$leftover" ]; then
		echo "== $label: left in /dev/shm: $leftover"
		for f in $leftover; do rm -f "/dev/shm/$f"; done
		rc=1
	fi
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log"; then
		echo "== $label: sanitizer report (see above)"
		[ "$rc" -eq 0 ] && rc=1
	fi
	case $rc in
	0) verdict=ok ;;
	77) verdict=skipped ;;
	*) verdict="FAILED (exit $rc)"; failed=1 ;;
	esac
	line="$label: $verdict in $(since "$t0")  -- $(tail -n 1 "$log")"
	echo "== $line"
	summary="$summary$line
"
}

build test_ring "$ASAN" test_ring.c &&
	run_one test_ring.asan "$bin/test_ring"
build stress_spsc.tsan "$TSAN" stress_spsc.c &&
	run_one stress_spsc.tsan "$bin/stress_spsc.tsan" -n "$TSAN_MESSAGES" -r "$TSAN_STREAMS"
build stress_wait.tsan "$TSAN" stress_wait.c &&
	run_one stress_wait.tsan "$bin/stress_wait.tsan" -m threads -n "$WAIT_TSAN_HANDOFFS"
build stress_mpmc.tsan "$TSAN" stress_mpmc.c &&
	run_one stress_mpmc.tsan "$bin/stress_mpmc.tsan" -n "$MPMC_TSAN_MESSAGES"
build stress_spsc.asan "$ASAN" stress_spsc.c &&
	run_one stress_spsc.asan "$bin/stress_spsc.asan" -n "$STRESS_MESSAGES"
build stress_mpmc.asan "$ASAN" stress_mpmc.c &&
	run_one stress_mpmc.asan "$bin/stress_mpmc.asan" -n "$MPMC_MESSAGES"
build test_ring.plain "$PLAIN" test_ring.c &&
	run_one test_ring.plain "$bin/test_ring.plain"
build stress_spsc.plain "$PLAIN" stress_spsc.c &&
	run_one stress_spsc.plain "$bin/stress_spsc.plain" -n "$PLAIN_MESSAGES"
build stress_wait.plain "$PLAIN" stress_wait.c &&
	run_one stress_wait.plain "$bin/stress_wait.plain" -m procs,shutdown,dead -n "$WAIT_HANDOFFS"
# The fallback handshake (no membarrier) in real code generation, across processes.
build stress_wait.rmw "$PLAIN -DSHMRING_WAIT_RMW" stress_wait.c &&
	run_one stress_wait.rmw "$bin/stress_wait.rmw" -m procs -n "$WAIT_RMW_HANDOFFS"
build stress_mpmc.plain "$PLAIN" stress_mpmc.c &&
	run_one stress_mpmc.plain "$bin/stress_mpmc.plain" -n "$MPMC_PLAIN_MESSAGES"

echo
printf '%s' "$summary"
[ "$failed" -eq 0 ] && echo "run.sh: all passed" || echo "run.sh: FAILED"
exit "$failed"
