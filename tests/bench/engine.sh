#!/usr/bin/env bash
# Engine benchmark: a generated config of N `file` resources (default 1000) on
# the local host. Prints validate time, no-change plan time and peak memory.
# Targets on a 2-core machine: validate < 100 ms, plan < 1 s, < 100 MB.
# Usage: tests/bench/engine.sh [N] [--claw PATH]
set -euo pipefail
n=1000
claw=""
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) claw="$2"; shift 2 ;;
    *) n="$1"; shift ;;
  esac
done
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$claw" ]; then
  (cd "$root" && cargo build --release -q --bin claw)
  claw="$root/target/release/claw"
fi
claw="$(cd "$(dirname "$claw")" && pwd)/$(basename "$claw")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$n" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/claw.toml", "w") as f:
    f.write('[stack]\nname = "bench"\n\n[vars]\nroot = "out"\n')
    for i in range(n):
        dep = f'\ndepends_on = ["file.f{i-1:04d}"]' if i % 10 else ""
        f.write(f'\n[file.f{i:04d}]\npath = "${{vars.root}}/d{i//100}/f{i:04d}.txt"\ncontent = "file {i}\\nline two\\n"\nmode = "0644"{dep}\n')
PY
cd "$work"
"$claw" apply --auto-approve -q >"$work/apply.log" 2>&1 || { echo "setup apply failed:"; tail -20 "$work/apply.log"; exit 1; }
measure() {  # prints "<best ms> <peak MB>" over 5 runs of: claw "$@"
  python3 - "$claw" "$@" <<'PY'
import resource, subprocess, sys, time
best = None
for _ in range(5):
    t = time.perf_counter()
    r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t) * 1000
    if r.returncode not in (0,):
        sys.exit(f"claw {sys.argv[2:]} failed: {r.stderr.decode()[:500]}")
    best = dt if best is None else min(best, dt)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{best:.0f} {peak:.1f}")
PY
}
read -r vms vmb < <(measure validate)
read -r pms pmb < <(measure plan --detailed-exitcode)
echo "resources:            $n"
echo "validate:             ${vms} ms (target < 100 ms)"
echo "no-change plan:       ${pms} ms (target < 1000 ms)"
echo "peak memory (plan):   ${pmb} MB (target < 100 MB; validate ${vmb} MB)"
