#!/usr/bin/env bash
# Two builds side by side, in instructions per request (bench/instructions.sh
# under callgrind, so a busy machine does not move the numbers):
#
#   bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR [N]
#
# Each BIN_DIR is a release target directory holding mcp-verifier, mcp-authz
# and the examples bench_noop, bench_verify and bench_tokens (for a past
# commit: `git worktree add /tmp/before <commit>`, then in it
# `cargo build --release -p mcp-authz --bin mcp-authz --example bench_tokens`
# and `cargo build --release -p mcp-verifier --bin mcp-verifier --example
# bench_noop --example bench_verify`). Prints both counts per row and the
# change in percent; the rows are those of bench/instructions.sh but the
# metrics pair (METRICS_ROWS=0).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 2 ]] || { echo "usage: bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR [N]" >&2; exit 2; }
before=$1 after=$2 n=${3:-2000}
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
for side in before after; do
  dir=${!side}
  echo "== $side: $dir"
  BIN_DIR="$dir" METRICS_ROWS=0 bash "$here/instructions.sh" "$n" | tee "$w/$side.txt"
done
python3 - "$w/before.txt" "$w/after.txt" <<'EOF'
import re, sys
row = re.compile(r"^\s+(.+?)\s+(\d+) instructions per request")
def rows(path):
    return {m.group(1): int(m.group(2)) for m in map(row.match, open(path)) if m}
b, a = rows(sys.argv[1]), rows(sys.argv[2])
print()
print("| row | before | after | change |")
print("|---|---|---|---|")
for label in b:
    if label in a:
        print(f"| {label} | {b[label]:,} | {a[label]:,} | {100 * (a[label] - b[label]) / b[label]:+.2f}% |")
EOF
