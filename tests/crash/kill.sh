#!/usr/bin/env bash
# Crash test (issues 10 and 11): interrupt a real `claw apply` of a mixed
# stack at a random moment, then run ONE `claw apply`, check that the stack
# converged (`plan --detailed-exitcode` exits 0, every worktree setup ran to
# its end), `claw destroy`, and count what is left: live objects outside the
# state, duplicates, setups missing, locks left behind. Worktrees are counted
# by their administrative folders in `.git/worktrees/` (one per worktree),
# which also catches what a `git worktree add` killed midway leaves and
# `git worktree list` may not show (a locked folder without its `gitdir`).
#
# Signals (`--signal`): KILL (claw alone dies; the scripts it runs go on, as
# with the OOM killer), KILLGROUP (claw and every script it runs die, as when
# the machine or the terminal does: a setup dies midway), TERM (claw stops
# starting work, waits for what runs, exits 130), TERM2 (a second TERM soon
# after: it abandons what runs), or MIX (default: one of the four per run).
#
# The stack: 20 files, 10 tmux sessions (private socket), 10 git worktrees of
# one repository with a `setup`, 10 Docker containers (an image built FROM
# scratch with a static busybox; left out, and said so, when no dockerd
# answers). Each setup writes a marker outside its worktree (a marker inside
# would make the worktree dirty, and destroy rightly refuses a dirty worktree).
#
# Usage: tests/crash/kill.sh [--runs 20] [--signal MIX|KILL|KILLGROUP|TERM|TERM2] [--claw PATH]
# Prints one line per run and a closing line with the totals; exits 1 when
# anything was left behind, duplicated, or a setup never ran.
set -euo pipefail

RUNS=20
SIG=MIX
CLAW=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --signal) SIG="$2"; shift 2 ;;
    --claw) CLAW="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$CLAW" ]; then
  (cd "$ROOT" && cargo build -q --bin claw >&2)
  CLAW="${CARGO_TARGET_DIR:-$ROOT/target}/debug/claw"
fi

WORK="$(mktemp -d /tmp/claw-crash.XXXXXX)"
STACK="crash-$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')"
SOCK="$WORK/tmux.sock"
DOCKER=0
if docker info >/dev/null 2>&1 && command -v busybox >/dev/null; then DOCKER=1; fi
IMAGE="claw-crash-busybox:1"
cleanup() {
  tmux -S "$SOCK" kill-server 2>/dev/null || true
  if [ "$DOCKER" = 1 ]; then
    docker ps -aq --filter "label=claw.dev/stack=$STACK" | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A repository with one commit for the worktrees.
git init -q -b main "$WORK/repo"
git -C "$WORK/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m init

if [ "$DOCKER" = 1 ]; then
  mkdir -p "$WORK/img"
  cp "$(command -v busybox)" "$WORK/img/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sleep", "3600"]\n' >"$WORK/img/Dockerfile"
  docker build -q -t "$IMAGE" "$WORK/img" >/dev/null
fi

{
  printf '[stack]\nname = "%s"\n\n' "$STACK"
  for i in $(seq -w 1 20); do
    printf '[file.f%s]\npath = "out/f%s.txt"\ncontent = "file %s\\n"\n\n' "$i" "$i" "$i"
  done
  for i in $(seq -w 1 10); do
    printf '[tmux_session.s%s]\nsocket = "%s"\ncwd = "%s"\ncommand = "sleep 3600"\n\n' "$i" "$SOCK" "$WORK" 
  done
  for i in $(seq -w 1 10); do
    printf '[git_worktree.w%s]\nrepo = "%s/repo"\npath = "%s/wt/w%s"\nbranch = "agent-%s"\nbase = "main"\nsetup = "sleep 0.3; mkdir -p %s/setups; echo ran > %s/setups/w%s"\n\n' "$i" "$WORK" "$WORK" "$i" "$i" "$WORK" "$WORK" "$i"
  done
  if [ "$DOCKER" = 1 ]; then
    for i in $(seq -w 1 10); do
      printf '[docker_container.c%s]\nimage = "%s"\n\n' "$i" "$IMAGE"
    done
  fi
} >"$WORK/claw.toml"

total_objects=$((20 + 10 + 10 + DOCKER * 10))
cd "$WORK"

left_files() { find "$WORK/out" -type f 2>/dev/null | wc -l; }
left_sessions() { tmux -S "$SOCK" list-sessions -F '#{session_name}' 2>/dev/null | wc -l; }
left_worktrees() { ls -A "$WORK/repo/.git/worktrees" 2>/dev/null | wc -l; }
left_containers() {
  if [ "$DOCKER" = 1 ]; then docker ps -aq --filter "label=claw.dev/stack=$STACK" | wc -l; else echo 0; fi
}
dup_containers() {
  if [ "$DOCKER" = 1 ]; then
    docker ps -a --filter "label=claw.dev/stack=$STACK" --format '{{.Label "claw.dev/address"}}' | sort | uniq -d | wc -l
  else echo 0; fi
}

# How long one uninterrupted apply of the stack takes: the kills land in it.
t0=$(date +%s.%N)
"$CLAW" apply --auto-approve -q >"$WORK/full.log" 2>&1 || { echo "the reference apply failed:"; tail -15 "$WORK/full.log"; exit 1; }
full=$(python3 -c "import sys; print(round($(date +%s.%N) - $t0, 2))")
"$CLAW" destroy --auto-approve -q >"$WORK/full.log" 2>&1 || { echo "the reference destroy failed:"; tail -15 "$WORK/full.log"; exit 1; }
rm -rf "$WORK/.claw" "$WORK/setups"
git -C "$WORK/repo" for-each-ref --format='%(refname:short)' refs/heads/agent-* | xargs -r git -C "$WORK/repo" branch -q -D
echo "one uninterrupted apply of $total_objects objects: ${full}s"

sum_left=0 sum_dup=0 sum_setup=0 sum_locks=0 sum_unconverged=0 takeovers=0
declare -A per_signal=()
for run in $(seq 1 "$RUNS"); do
  sig="$SIG"
  if [ "$sig" = MIX ]; then
    sig=$(python3 -c "import random; print(random.choice(['KILL', 'KILLGROUP', 'TERM', 'TERM2']))")
  fi
  per_signal[$sig]=$(( ${per_signal[$sig]:-0} + 1 ))
  # A random moment of the apply.
  delay=$(python3 -c "import random; print(round(random.uniform(0.05, max(0.2, $full * 0.95)), 2))")
  # A session of its own (setsid execs in place: $! is claw), so that
  # KILLGROUP reaches the scripts it runs.
  setsid "$CLAW" apply --auto-approve -q >"$WORK/crashed.log" 2>&1 &
  pid=$!
  sleep "$delay"
  case "$sig" in
    KILL) kill -s KILL "$pid" 2>/dev/null || true ;;
    KILLGROUP) kill -s KILL -- "-$pid" 2>/dev/null || true ;;
    TERM) kill -s TERM "$pid" 2>/dev/null || true ;;
    TERM2) kill -s TERM "$pid" 2>/dev/null || true; sleep 0.2; kill -s TERM "$pid" 2>/dev/null || true ;;
  esac
  wait "$pid" 2>/dev/null || true
  live_at_kill=$(( $(left_files) + $(left_sessions) + $(left_worktrees) + $(left_containers) ))

  # One apply must converge, taking over a dead holder's lock by itself.
  if ! "$CLAW" apply --auto-approve >"$WORK/recover.log" 2>&1; then
    echo "run $run: the recovering apply failed:"; tail -15 "$WORK/recover.log"
    sum_unconverged=$((sum_unconverged + 1))
  fi
  grep -qi "took over\|taking over" "$WORK/recover.log" && takeovers=$((takeovers + 1))
  set +e
  "$CLAW" plan --detailed-exitcode >"$WORK/plan.log" 2>&1
  prc=$?
  set -e
  if [ "$prc" != 0 ]; then
    echo "run $run: plan after the recovering apply exited $prc:"; head -20 "$WORK/plan.log"
    sum_unconverged=$((sum_unconverged + 1))
  fi
  missing_setups=0
  for i in $(seq -w 1 10); do
    [ -f "$WORK/setups/w$i" ] || missing_setups=$((missing_setups + 1))
  done
  # More live objects than configured is a duplicate too (a second
  # container, session or worktree made for one address).
  over() { [ "$1" -gt "$2" ] && echo $(( $1 - $2 )) || echo 0; }
  dups=$(( $(dup_containers) + $(over "$(left_sessions)" 10) + $(over "$(left_worktrees)" 10) + $(over "$(left_files)" 20) ))

  "$CLAW" destroy --auto-approve >"$WORK/destroy.log" 2>&1 || { echo "run $run: destroy failed:"; tail -15 "$WORK/destroy.log"; }
  left=$(( $(left_files) + $(left_sessions) + $(left_worktrees) + $(left_containers) ))
  locks=$(find "$WORK/.claw" -name '*.lock' 2>/dev/null | wc -l)
  echo "run $run: $sig after ${delay}s with $live_at_kill/$total_objects live; left after destroy: $left; duplicates: $dups; setups missing: $missing_setups; locks left: $locks"
  sum_left=$((sum_left + left)) sum_dup=$((sum_dup + dups)) sum_setup=$((sum_setup + missing_setups)) sum_locks=$((sum_locks + locks))
  # Start the next run from nothing, whatever happened.
  tmux -S "$SOCK" kill-server 2>/dev/null || true
  rm -rf "$WORK/out" "$WORK/wt" "$WORK/.claw" "$WORK/setups"
  # Locked worktrees (a killed add) survive `git worktree prune`.
  rm -rf "$WORK/repo/.git/worktrees"
  git -C "$WORK/repo" worktree prune
  git -C "$WORK/repo" for-each-ref --format='%(refname:short)' refs/heads/agent-* | xargs -r git -C "$WORK/repo" branch -q -D
  if [ "$DOCKER" = 1 ]; then docker ps -aq --filter "label=claw.dev/stack=$STACK" | xargs -r docker rm -f >/dev/null 2>&1 || true; fi
done
mix=""
for k in "${!per_signal[@]}"; do mix="$mix $k×${per_signal[$k]}"; done
echo "crash test: $RUNS runs (signals:$mix; $total_objects objects, a full apply ${full}s, docker: $DOCKER): left behind $sum_left, duplicates $sum_dup, setups missing $sum_setup, locks left $sum_locks, not converged $sum_unconverged, lock takeovers $takeovers"
[ "$sum_left" = 0 ] && [ "$sum_dup" = 0 ] && [ "$sum_setup" = 0 ] && [ "$sum_locks" = 0 ] && [ "$sum_unconverged" = 0 ]
