# Helpers the benchmark scripts source (bash): the claw binary, timing,
# medians and ratios, and a private sshd on a loopback port.
#
# Every peer benchmark runs claw and the peer alternately (claw, peer, claw,
# peer, ...) and prints medians, so that a load that comes and goes on the
# machine falls on both.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# bench_claw PATH-OR-EMPTY: the claw binary to measure (a release build of
# the checkout when none is given).
bench_claw() {
  if [ -n "$1" ]; then
    (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")")
  else
    (cd "$BENCH_ROOT" && cargo build --release -q --bin claw >&2)
    echo "${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/claw"
  fi
}

now_ms() { date +%s%3N; }

# median: numbers on stdin (one a line) -> the median.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# ratio A B -> A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }

# timed LOG CMD...: runs CMD with its output in LOG, prints its wall time in
# ms; exits the script (with the log) when CMD fails.
timed() {
  local log="$1" t0 t1
  shift
  t0=$(now_ms)
  if ! "$@" >"$log" 2>&1; then
    echo "failed: $*" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  t1=$(now_ms)
  echo $((t1 - t0))
}

# start_sshd DIR SHELL: a private sshd on 127.0.0.1 with its own host key,
# a key for the current user in DIR/id_ed25519 and DIR/known_hosts. SHELL
# `sh`: where this runs as root with `unshare`, sshd sees /bin/sh as the
# login shell (a private mount of a copy of /etc/passwd), so that a command
# costs what sshd and a POSIX shell cost, not the login user's ~/.bashrc
# (root's runs `pyenv init` here: ~0.3 s per command). `own`: the user's
# login shell. Sets SSHD_PID, SSHD_PORT, SSHD_USER and SSHD_SHELL (what was
# used); the caller kills SSHD_PID.
start_sshd() {
  local dir="$1" want="$2"
  mkdir -p /run/sshd 2>/dev/null || true
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  SSHD_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  SSHD_USER="$(id -un)"
  cat >"$dir/sshd_config" <<CFG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
LogLevel ERROR
CFG
  SSHD_SHELL="$(getent passwd "$SSHD_USER" | cut -d: -f7)"
  if [ "$want" = sh ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    awk -F: -v OFS=: -v u="$SSHD_USER" '$1 == u { $7 = "/bin/sh" } { print }' /etc/passwd >"$dir/passwd"
    unshare -m sh -c 'mount --bind "$1" /etc/passwd && exec /usr/sbin/sshd -D -e -f "$2"' \
      sh "$dir/passwd" "$dir/sshd_config" 2>"$dir/sshd.log" &
    SSHD_SHELL=/bin/sh
  else
    [ "$want" = sh ] && echo "(not root or no unshare: sshd runs the login shell $SSHD_SHELL)" >&2
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  fi
  SSHD_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && break
    sleep 0.05
  done
  echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
}

# ssh_host_block DIR: the [host.bench] table of the sshd above.
ssh_host_block() {
  cat <<TOML
[host.bench]
address = "127.0.0.1:$SSHD_PORT"
user = "$SSHD_USER"
identity_file = "$1/id_ed25519"
known_hosts = "$1/known_hosts"

TOML
}

# files_toml N HOST DIR [SSH-DIR]: N `file` resources on HOST ("bench" over
# the sshd above, "local" here) under DIR/files, into DIR/claw.toml.
files_toml() {
  local n=$1 host=$2 dir=$3 keys="" i
  for i in $(seq 0 $((n - 1))); do keys="$keys\"f$i\", "; done
  {
    printf '[stack]\nname = "bench-files-%s-%s"\n\n' "$host" "$n"
    if [ "$host" = bench ]; then ssh_host_block "$4"; fi
    cat <<TOML
[file.f]
host = "$host"
for_each = [${keys%, }]
path = "$dir/files/\${each.key}.conf"
content = "setting = \${each.key}\\n"
TOML
  } >"$dir/claw.toml"
}
