#!/usr/bin/env bash
# Benchmark: the host provider over SSH to a real sshd on 127.0.0.1.
#
# For each size N (default: 200, then 40) it applies N host resources on one
# SSH host — N/2 git worktrees in 2 repositories and N/2 tmux sessions on 2
# sockets — then times a no-change `claw -v plan` and prints the SSH round
# trips it made. The round trips must not grow with N (one probe per
# repository and one per socket).
#
# Then the `file` figures of issue 14: a no-change plan of 200 files and of 1
# file over SSH (median of 5 runs, with the round trips), and an apply of
# 1,000 local files from nothing (median of 3 runs, destroyed in between).
#
# The login shell: `--login-shell sh` (default) has sshd run /bin/sh for the
# login user where this runs as root (see start_sshd in lib.sh: root's
# ~/.bashrc here costs ~0.3 s per SSH command); `own` keeps the user's.
#
# Usage: tests/bench/host.sh [--claw PATH] [--sizes "200 40"] [--files-only]
#                            [--login-shell sh|own]
# Needs: openssh-server (/usr/sbin/sshd), ssh-keygen, git, tmux, and a claw
# binary (default: cargo build --release, into $CARGO_TARGET_DIR or target/).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SIZES="200 40"
CLAW=""
FILES_ONLY=""
LOGIN_SHELL=sh
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --files-only) FILES_ONLY=1; shift ;;
    --login-shell) LOGIN_SHELL="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
CLAW="$(bench_claw "$CLAW")"
for t in /usr/sbin/sshd ssh-keygen git tmux; do
  command -v "$t" >/dev/null || { echo "$t is not installed" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/claw-bench-host.XXXXXX)"
cleanup() {
  for s in "$WORK"/run*/sock*/bench.sock; do
    [ -S "$s" ] && tmux -S "$s" kill-server 2>/dev/null || true
  done
  [ -n "${SSHD_PID:-}" ] && kill "$SSHD_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- a private sshd on a loopback port --------------------------------------
start_sshd "$WORK" "$LOGIN_SHELL"

keys_json() { # N -> ["a0", "a1", ...]
  local n=$1 prefix=$2 out="" i
  for i in $(seq 0 $((n - 1))); do out="$out\"$prefix$i\", "; done
  echo "[${out%, }]"
}

host_block() { ssh_host_block "$WORK"; }

run_size() {
  local n=$1
  local per=$((n / 4))             # per repository and per socket
  local dir="$WORK/run$n"
  mkdir -p "$dir"
  for r in a b; do
    git init -q -b main "$dir/repo-$r"
    git -C "$dir/repo-$r" -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
  done
  {
    printf '[stack]\nname = "bench-host-%s"\n\n' "$n"
    host_block
    for r in a b; do
      cat <<TOML
[git_worktree.$r]
host = "bench"
for_each = $(keys_json $per w)
repo = "$dir/repo-$r"
path = "$dir/wt-$r/\${each.key}"
branch = "bench/$r-\${each.key}"

TOML
    done
    for s in 1 2; do
      cat <<TOML
[tmux_session.s$s]
host = "bench"
for_each = $(keys_json $per s)
socket = "$dir/sock$s/bench.sock"
session = "s$s-\${each.key}"
window = "main"
command = "sleep 1000000"

TOML
    done
  } > "$dir/claw.toml"

  local t0 t1 out rt
  t0=$(now_ms)
  "$CLAW" -C "$dir" apply --auto-approve -q >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; exit 1; }
  t1=$(now_ms)
  local apply_ms=$((t1 - t0))

  t0=$(now_ms)
  set +e
  out="$("$CLAW" -C "$dir" -v plan --detailed-exitcode 2>&1)"
  local code=$?
  set -e
  t1=$(now_ms)
  local plan_ms=$((t1 - t0))
  [ "$code" = 0 ] || { echo "the no-change plan exited $code:" >&2; echo "$out" >&2; exit 1; }
  rt="$(printf '%s\n' "$out" | grep -o '[0-9]* ssh round trips' | head -n1 | cut -d' ' -f1)"

  t0=$(now_ms)
  "$CLAW" -C "$dir" destroy --auto-approve -q >"$dir/destroy.log" 2>&1 || { cat "$dir/destroy.log" >&2; exit 1; }
  t1=$(now_ms)
  local destroy_ms=$((t1 - t0))

  printf '%5d resources (%d worktrees in 2 repos, %d tmux sessions on 2 sockets): no-change plan %6d ms, %s ssh round trips | apply %6d ms, destroy %6d ms\n' \
    "$n" $((per * 2)) $((per * 2)) "$plan_ms" "${rt:-?}" "$apply_ms" "$destroy_ms"
  echo "$rt" > "$dir/rt"
}

run_files_ssh() {
  local n=$1
  local dir="$WORK/files-ssh$n" i t0 t1 out rt times=""
  mkdir -p "$dir"
  files_toml "$n" bench "$dir" "$WORK"
  "$CLAW" -C "$dir" apply --auto-approve -q >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; exit 1; }
  for i in 1 2 3 4 5; do
    t0=$(now_ms)
    out="$("$CLAW" -C "$dir" -v plan --detailed-exitcode 2>&1)" || { echo "the no-change plan of $n files failed:" >&2; echo "$out" >&2; exit 1; }
    t1=$(now_ms)
    times="$times$((t1 - t0))\n"
  done
  rt="$(printf '%s\n' "$out" | grep -o '[0-9]* ssh round trips' | head -n1 | cut -d' ' -f1)"
  printf '%5d files over SSH: no-change plan %5d ms (median of 5), %s ssh round trips\n' \
    "$n" "$(printf "$times" | median)" "${rt:-?}"
}

run_files_local() {
  local n=$1
  local dir="$WORK/files-local$n" i t0 t1 times=""
  mkdir -p "$dir"
  files_toml "$n" local "$dir"
  for i in 1 2 3; do
    t0=$(now_ms)
    "$CLAW" -C "$dir" apply --auto-approve -q >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; exit 1; }
    t1=$(now_ms)
    times="$times$((t1 - t0))\n"
    [ "$(ls "$dir/files" | wc -l)" = "$n" ] || { echo "apply did not create $n files" >&2; exit 1; }
    "$CLAW" -C "$dir" destroy --auto-approve -q >"$dir/destroy.log" 2>&1 || { cat "$dir/destroy.log" >&2; exit 1; }
  done
  printf '%5d local files: apply from nothing %5d ms (median of 3)\n' "$n" "$(printf "$times" | median)"
}

echo "claw: $CLAW"
echo "ssh host: 127.0.0.1:$SSHD_PORT, login shell $SSHD_SHELL (one connection per run)"
if [ -z "$FILES_ONLY" ]; then
  first=""
  for n in $SIZES; do
    run_size "$n"
    rt="$(cat "$WORK/run$n/rt")"
    if [ -z "$first" ]; then first="$rt"; elif [ "$rt" != "$first" ]; then
      echo "FAIL: ssh round trips changed with the resource count ($first vs $rt)" >&2; exit 1
    fi
  done
  echo "ssh round trips of a no-change plan are the same for every size: $first"
fi
run_files_ssh 200
run_files_ssh 1
run_files_local 1000
