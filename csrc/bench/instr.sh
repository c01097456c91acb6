#!/bin/sh
# Instructions per message (put + get, stamp and check included), counted by
# callgrind: exact and repeatable on a noisy host.  Prints a Markdown table.
#   csrc/bench/instr.sh              every cell refbench measures, at capacity 4096
# Each number is (Ir at 2R rounds - Ir at R rounds) / (R * batch): set-up cancels.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
bin=$here/bin
CC=${CC:-gcc}
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind" >&2; exit 77; }
mkdir -p "$bin"
$CC -std=c11 -O2 -Wall -Wextra -Werror -I"$src" "$src"/*.c "$here/instr.c" \
	-o "$bin/instr" -lpthread -lrt

ir() {   # ir ARGS...: instructions of one run
	valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin/instr" "$@" 2>&1 |
		awk '/Collected :/ { print $NF }'
}

per_msg() {   # per_msg VARIANT KIND ARRAY MSG BATCH
	r=$((40000 / $5 + 200))
	a=$(ir "$@" "$r")
	b=$(ir "$@" $((2 * r)))
	[ -n "$a" ] && [ -n "$b" ] || { echo "?"; return; }
	awk -v a="$a" -v b="$b" -v n=$((r * $5)) 'BEGIN { printf "%.1f", (b - a) / n }'
}

echo "| kind | ring | msg B | batch | ref (packed) | ref+slot | shmring | shmring - ref+slot |"
echo "|---|---|---|---|---|---|---|---|"
for kind in spsc mpmc; do
	for array in 0 1; do
		[ "$kind" = mpmc ] && [ "$array" = 1 ] && continue
		for msg in 8 64; do
			for batch in 1 256; do
				ref=$(per_msg ref $kind $array $msg $batch)
				slot=$(per_msg slot $kind $array $msg $batch)
				ours=$(per_msg shmring $kind $array $msg $batch)
				ring=byte; [ "$array" = 1 ] && ring=array
				echo "| $kind | $ring | $msg | $batch | $ref | $slot | $ours |" \
					"$(awk -v a="$ours" -v b="$slot" 'BEGIN { printf "%+.1f", a - b }') |"
			done
		done
	done
done
