#!/usr/bin/env bash
# Peer benchmark: claw's `file` on the local host against Terraform's
# built-in `terraform_data` on the same graph (N independent resources, the
# same strings), offline, local state, both at parallelism 10.
#
# Per run, alternately: `claw apply` from nothing (no state, no files) and
# `terraform apply` from nothing (no state); then a no-change plan of each.
# Prints the medians and the claw/Terraform ratios, and checks issue 14's
# targets: apply < 0.5 s and <= 0.05x Terraform.
#
# terraform_data writes no file: Terraform's figure is its engine and state
# alone, claw's includes creating N files (atomically, with their modes).
#
# Usage: tests/bench/terraform.sh [--claw PATH] [--n 1000] [--runs 3] [--dir DIR]
# (--dir: where the files go, default a temporary folder under /tmp.)
# Needs: terraform (1.x) and a claw binary (default: a release build).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=1000
RUNS=3
CLAW=""
BASE=/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --dir) BASE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
command -v terraform >/dev/null || { echo "terraform is not installed" >&2; exit 1; }
CLAW="$(bench_claw "$CLAW")"
WORK="$(mktemp -d "$BASE/claw-bench-tf.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
: >"$WORK/terraformrc"
export TF_CLI_CONFIG_FILE="$WORK/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

mkdir -p "$WORK/claw" "$WORK/tf"
files_toml "$N" local "$WORK/claw"
for i in $(seq 0 $((N - 1))); do
  printf 'resource "terraform_data" "f%s" {\n  input = "setting = f%s\\n"\n}\n' "$i" "$i"
done >"$WORK/tf/main.tf"
(cd "$WORK/tf" && terraform init -input=false >/dev/null)

fresh_claw() { rm -rf "$WORK/claw/.claw" "$WORK/claw/files"; }
fresh_tf() { rm -f "$WORK/tf/terraform.tfstate" "$WORK/tf/terraform.tfstate.backup"; }

ca=() ta=() cp=() tp=()
for r in $(seq "$RUNS"); do
  fresh_claw
  ca+=("$(timed "$WORK/claw.log" "$CLAW" -C "$WORK/claw" apply --auto-approve -q)")
  [ "$(ls "$WORK/claw/files" | wc -l)" -eq "$N" ] || { echo "claw did not create $N files" >&2; exit 1; }
  fresh_tf
  ta+=("$(cd "$WORK/tf" && timed "$WORK/tf.log" terraform apply -auto-approve -input=false -parallelism=10)")
  cp+=("$(timed "$WORK/claw-plan.log" "$CLAW" -C "$WORK/claw" plan -q --detailed-exitcode)")
  tp+=("$(cd "$WORK/tf" && timed "$WORK/tf-plan.log" terraform plan -input=false -detailed-exitcode)")
  echo "run $r: claw apply ${ca[-1]} ms, terraform apply ${ta[-1]} ms; no-change plan: claw ${cp[-1]} ms, terraform ${tp[-1]} ms" >&2
done

m() { printf '%s\n' "$@" | median; }
c_apply=$(m "${ca[@]}"); t_apply=$(m "${ta[@]}"); c_plan=$(m "${cp[@]}"); t_plan=$(m "${tp[@]}")
echo "== $N local files: claw file vs Terraform $(terraform version | head -1 | awk '{print $2}') terraform_data (medians of $RUNS interleaved runs, $(nproc) cores, files in $BASE)"
printf '%-28s %8d ms   terraform %8d ms   claw/terraform %s\n' "apply from nothing" "$c_apply" "$t_apply" "$(ratio "$c_apply" "$t_apply")"
printf '%-28s %8d ms   terraform %8d ms   claw/terraform %s\n' "no-change plan" "$c_plan" "$t_plan" "$(ratio "$c_plan" "$t_plan")"
# claw's own CPU in one more apply from nothing (the rest of its wall time
# is the kernel creating files, and waiting).
fresh_claw
/usr/bin/time -o "$WORK/cpu" -f '%U %S' "$CLAW" -C "$WORK/claw" apply --auto-approve -q >/dev/null 2>&1
read -r cu cs <"$WORK/cpu"
echo "claw apply CPU: user ${cu}s, system ${cs}s"
fail=0
[ "$c_apply" -lt 500 ] || { echo "MISS: claw apply of $N files is not below 500 ms" >&2; fail=1; }
awk -v a="$c_apply" -v b="$t_apply" 'BEGIN { exit !(a <= 0.05 * b) }' ||
  { echo "MISS: claw apply is above 0.05x terraform" >&2; fail=1; }
exit $fail
