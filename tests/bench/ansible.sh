#!/usr/bin/env bash
# Peer benchmark: claw's `file` over SSH against Ansible (ansible-core from
# PyPI, in a venv), N files (default 200) on one host: a private sshd on
# 127.0.0.1 (see start_sshd in lib.sh; /bin/sh as the login shell where this
# runs as root, `--login-shell own` for the user's).
#
# Ansible gets its fastest settings: no fact gathering, pipelining, OpenSSH
# connection sharing (ControlPersist), the interpreter given (no discovery),
# one `copy` task looping over the files, 10 forks. Per run, alternately:
#   - apply from nothing: `claw apply` / `ansible-playbook` (files removed first);
#   - no-change plan: `claw plan --detailed-exitcode` / `ansible-playbook --check`.
# Prints the medians, the ratios, and claw's SSH round trips.
#
# Usage: tests/bench/ansible.sh [--claw PATH] [--n 200] [--runs 3]
#                               [--login-shell sh|own] [--venv DIR]
# Needs: openssh-server, ssh (OpenSSH client, Ansible's transport),
# python3 with venv, and PyPI the first time (the venv is kept in
# ~/.cache/claw-bench/ansible-venv).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=200
RUNS=3
CLAW=""
LOGIN_SHELL=sh
VENV="${HOME}/.cache/claw-bench/ansible-venv"
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --login-shell) LOGIN_SHELL="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
CLAW="$(bench_claw "$CLAW")"
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
  echo "installing ansible-core into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q ansible-core >&2
fi

WORK="$(mktemp -d /tmp/claw-bench-ansible.XXXXXX)"
cleanup() {
  [ -n "${SSHD_PID:-}" ] && kill "$SSHD_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
start_sshd "$WORK" "$LOGIN_SHELL"

mkdir -p "$WORK/claw" "$WORK/ansible"
files_toml "$N" bench "$WORK/claw" "$WORK"
A="$WORK/ansible"
cat >"$A/ansible.cfg" <<CFG
[defaults]
inventory = $A/hosts
forks = 10
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
stdout_callback = default
retry_files_enabled = False
local_tmp = $A/tmp
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$WORK/known_hosts -o IdentitiesOnly=yes
control_path_dir = $A/cp
CFG
echo "bench ansible_host=127.0.0.1 ansible_port=$SSHD_PORT ansible_user=$SSHD_USER ansible_ssh_private_key_file=$WORK/id_ed25519" >"$A/hosts"
{
  echo "- hosts: bench"
  echo "  gather_facts: false"
  echo "  tasks:"
  echo "    - ansible.builtin.file: { path: \"$A/files\", state: directory }"
  echo "    - ansible.builtin.copy:"
  echo "        dest: \"$A/files/{{ item }}.conf\""
  echo "        content: \"setting = {{ item }}\\n\""
  echo "      loop:"
  for i in $(seq 0 $((N - 1))); do echo "        - f$i"; done
} >"$A/play.yml"
export ANSIBLE_CONFIG="$A/ansible.cfg"
playbook() { "$VENV/bin/ansible-playbook" "$@" "$A/play.yml"; }

ca=() aa=() cp=() ap=()
for r in $(seq "$RUNS"); do
  rm -rf "$WORK/claw/.claw" "$WORK/claw/files"
  ca+=("$(timed "$WORK/claw-apply.log" "$CLAW" -C "$WORK/claw" apply --auto-approve -q)")
  rm -rf "$A/files"
  aa+=("$(timed "$A/apply.log" playbook)")
  cp+=("$(timed "$WORK/claw-plan.log" "$CLAW" -C "$WORK/claw" -v plan --detailed-exitcode)")
  ap+=("$(timed "$A/check.log" playbook --check)")
  grep -q "changed=0" "$A/check.log" || { echo "ansible --check found changes" >&2; tail -5 "$A/check.log" >&2; exit 1; }
  echo "run $r: apply claw ${ca[-1]} ms, ansible ${aa[-1]} ms; no-change plan claw ${cp[-1]} ms, ansible --check ${ap[-1]} ms" >&2
done
[ "$(ls "$WORK/claw/files" | wc -l)" -eq "$N" ] || { echo "claw did not create $N files" >&2; exit 1; }
[ "$(ls "$A/files" | wc -l)" -eq "$N" ] || { echo "ansible did not create $N files" >&2; exit 1; }
rt="$(grep -o '[0-9]* ssh round trips' "$WORK/claw-plan.log" | head -n1 | cut -d' ' -f1)"

m() { printf '%s\n' "$@" | median; }
c_apply=$(m "${ca[@]}"); a_apply=$(m "${aa[@]}"); c_plan=$(m "${cp[@]}"); a_plan=$(m "${ap[@]}")
echo "== $N files over SSH (127.0.0.1, login shell $SSHD_SHELL): claw vs $("$VENV/bin/ansible" --version | head -1) (medians of $RUNS interleaved runs, $(nproc) cores)"
printf '%-36s %7d ms   ansible %7d ms   claw/ansible %s\n' "apply from nothing" "$c_apply" "$a_apply" "$(ratio "$c_apply" "$a_apply")"
printf '%-36s %7d ms   ansible %7d ms   claw/ansible %s\n' "no-change plan (ansible --check)" "$c_plan" "$a_plan" "$(ratio "$c_plan" "$a_plan")"
echo "claw's no-change plan: ${rt:-?} ssh round trips"
