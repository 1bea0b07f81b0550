#!/usr/bin/env bash
# Scale benchmark (issue 11): N `file` resources in chains of 10 (each one
# references the previous one's path), for N = 2,000 / 8,000 / 20,000, and
# Terraform's `terraform_data` on the same graph beside it.
#
# Prints, per N: validate time, no-change plan time and its peak memory,
# apply-from-nothing time and its peak memory, the state bytes the apply
# wrote (claw's own count, CLAW_STATS), and for both tools the bytes the
# apply process passed to write(2) (/proc/PID/io wchar: for Terraform almost
# all of it is terraform.tfstate rewrites; claw's files are written by child
# processes and not counted), then the Terraform/claw ratios. Each run is capped with --timeout seconds
# (default 300) and shows "timeout" when it hits the cap.
#
# Targets (2-core machine, release build): 8,000 costs at most 5x of 2,000;
# at 20,000: validate < 1 s, no-change plan < 1.5 s, apply < 30 s, plan peak
# memory < 150 MB; state bytes written O(N).
#
# Where the time and memory go: `perf record --call-graph dwarf claw plan`
# in a generated folder; for the heap, build without mimalloc (heaptrack sees
# only the system allocator): `cargo build --release --no-default-features`,
# then `heaptrack claw plan` and `heaptrack_print --flamegraph-cost-type peak
# -F stacks.txt` (docs/benchmarks.md, "Scale", has the breakdown).
#
# Usage: tests/bench/scale.sh [--claw PATH] [--sizes "2000 8000 20000"]
#                             [--timeout 300] [--runs 3] [--no-terraform]
set -euo pipefail
sizes="2000 8000 20000"
claw=""
limit=300
runs=3
terraform=1
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) claw="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --timeout) limit="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --no-terraform) terraform=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$claw" ]; then
  (cd "$root" && cargo build --release -q --bin claw)
  claw="${CARGO_TARGET_DIR:-$root/target}/release/claw"
fi
claw="$(cd "$(dirname "$claw")" && pwd)/$(basename "$claw")"
if [ "$terraform" = 1 ] && ! command -v terraform >/dev/null; then
  echo "terraform is not installed: Terraform columns skipped" >&2
  terraform=0
fi
work="$(mktemp -d /tmp/claw-scale.XXXXXX)"
trap 'rm -rf "$work"' EXIT
: >"$work/terraformrc"
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

# run.py LABEL TIMEOUT CMD...: runs CMD (its own process group), prints
# "<seconds> <peak MB> <exit> <wchar>" or "timeout <peak MB> - <wchar>" on
# stdout, where wchar is the bytes the process itself passed to write(2)
# (/proc/PID/io, sampled every 10 ms: the last few ms may be missing); the
# command's stderr goes to $LABEL.err, stdout to /dev/null.
cat >"$work/run.py" <<'PY'
import os, signal, subprocess, sys, time
label, limit, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def wchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return 0
with open(label + ".err", "wb") as err:
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    w = 0
    while True:
        w = max(w, wchar(p.pid))
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            dt = time.perf_counter() - t
            print(f"{dt:.2f} {ru.ru_maxrss / 1024:.0f} {os.waitstatus_to_exitcode(status)} {w}")
            break
        if time.perf_counter() - t > limit:
            os.killpg(p.pid, signal.SIGKILL)
            _, _, ru = os.wait4(p.pid, 0)
            print(f"timeout {ru.ru_maxrss / 1024:.0f} - {w}")
            break
        time.sleep(0.01)
PY
run() { python3 "$work/run.py" "$@"; }

# median LABEL CMD...: the median time of $runs runs and the largest peak.
median() {
  local label="$1"; shift
  local times=() peak=0 out s m code
  for _ in $(seq "$runs"); do
    out="$(run "$label" "$limit" "$@")"
    read -r s m code _ <<<"$out"
    if [ "$s" = timeout ]; then echo "timeout $m"; return; fi
    if [ "$code" != 0 ] && [ "$code" != 2 ]; then
      echo "failed($code) $m"; sed -n 1,5p "$label.err" >&2; return
    fi
    times+=("$s"); [ "$m" -gt "$peak" ] && peak="$m"
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v p="$peak" '{a[NR]=$1} END {print a[int((NR+1)/2)], p}'
}

gen() {  # gen N DIR: claw.toml and main.tf of the same graph
  python3 - "$1" "$2" <<'PY'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
with open(f"{d}/claw.toml", "w") as f:
    f.write('[stack]\nname = "scale"\n\n[vars]\nroot = "out"\n')
    for i in range(n):
        ref = f" after ${{file.f{i-1:05d}.path}}" if i % 10 else ""
        f.write(f'\n[file.f{i:05d}]\npath = "${{vars.root}}/d{i//100}/f{i:05d}.txt"\n'
                f'content = "file {i}{ref}\\n"\nmode = "0644"\n')
with open(f"{d}/main.tf", "w") as f:
    for i in range(n):
        ref = f" after ${{terraform_data.f{i-1:05d}.output}}" if i % 10 else ""
        f.write(f'resource "terraform_data" "f{i:05d}" {{\n  input = "file {i}{ref}"\n}}\n')
PY
}

stat_bytes() {  # the last claw-stats total in FILE
  grep -o 'state bytes written: [0-9]*' "$1" | tail -1 | awk '{print $4}'
}

rows=()
for n in $sizes; do
  d="$work/claw-$n"; mkdir -p "$d"; gen "$n" "$d"; cd "$d"
  echo "== N=$n: claw" >&2
  read -r v_s _ < <(median "$d/validate" "$claw" validate -q)
  read -r a_s a_m _ a_w < <(run "$d/apply" "$limit" env CLAW_STATS=1 "$claw" apply --auto-approve -q)
  bytes="$(stat_bytes "$d/apply.err" || true)"
  [ -z "$bytes" ] && bytes="-"
  if [ "$a_s" = timeout ]; then
    # Finish it (a crash recovery of its own) so that the plan has a full state.
    run "$d/apply2" "$limit" "$claw" apply --auto-approve -q >/dev/null
  fi
  read -r p_s p_m < <(median "$d/plan" "$claw" plan --detailed-exitcode)
  per="-"; [ "$bytes" != "-" ] && per=$(( bytes / n ))
  t_v="-"; t_p="-"; t_a="-"; t_w="-"; t_pm="-"
  if [ "$terraform" = 1 ]; then
    td="$work/tf-$n"; mkdir -p "$td"; cp "$d/main.tf" "$td/"; cd "$td"
    echo "== N=$n: terraform" >&2
    terraform init -input=false >/dev/null 2>&1
    read -r t_v _ < <(median "$td/validate" terraform validate)
    read -r t_a _ _ t_w < <(run "$td/apply" "$limit" terraform apply -auto-approve -input=false)
    [ "$t_a" = timeout ] && t_w=">=$t_w"
    if [ "$t_a" != timeout ]; then
      read -r t_p t_pm < <(median "$td/plan" terraform plan -input=false -detailed-exitcode)
    else
      t_p="n/a"; t_pm="n/a"
    fi
  fi
  rows+=("$n|$v_s|$p_s|$p_m|$a_s|$a_m|$bytes|$per|$a_w|$t_v|$t_p|$t_pm|$t_a|$t_w")
done

ratio() { python3 -c "import sys
a,b=sys.argv[1],sys.argv[2]
try: print(f'{float(a)/float(b):.1f}x')
except Exception: print('-')" "$1" "$2"; }
echo
echo "claw $("$claw" --version 2>/dev/null | awk '{print $2}') (release) vs Terraform $(terraform version 2>/dev/null | head -1 | awk '{print $2}'); $(nproc) cores; times in seconds (median of $runs for validate and plan), memory = peak RSS"
echo
echo "| resources | validate | no-change plan | plan peak | apply from nothing | apply peak | state bytes written | per object | apply write(2) bytes | TF validate | TF no-change plan | TF plan peak | TF apply | TF apply write(2) bytes | plan TF/claw | apply TF/claw |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r n v p pm a am b per aw tv tp tpm ta tw <<<"$r"
  echo "| $n | $v | $p | ${pm} MB | $a | ${am} MB | $b | $per | $aw | $tv | $tp | ${tpm} MB | $ta | $tw | $(ratio "$tp" "$p") | $(ratio "$ta" "$a") |"
done
