#!/bin/sh
# Build refbench (csrc/*.c + csrc/bench/refbench.c) and run it.
#   csrc/bench/run.sh            full matrix, 7 rounds, ~0.4 s trials (~6-10 min)
#   csrc/bench/run.sh --quick    3 rounds, ~0.1 s trials, capacity 4096 only (~1 min)
# Other arguments go to refbench (refbench --help).  The Markdown report goes to
# stdout, progress to stderr:  csrc/bench/run.sh > report.md
# The binary is built in csrc/bench/bin/ (ignored by git).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
bin=$here/bin
CC=${CC:-gcc}

mkdir -p "$bin"
echo "== cc refbench" >&2
# Portable code generation on purpose: no -march.
$CC -std=c11 -O2 -Wall -Wextra -Werror -I"$src" "$src"/*.c "$here/refbench.c" \
	-o "$bin/refbench" -lpthread -lrt -lm

# Which core was measured: the commit, and a hash of the sources as built
# (the working tree may differ from the commit).
head=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "?")
sum=$(cat "$src"/*.c "$src"/*.h | sha256sum | cut -c1-12)
REFBENCH_CORE="commit $head, csrc/*.[ch] sha256 $sum"
export REFBENCH_CORE

exec "$bin/refbench" "$@"
