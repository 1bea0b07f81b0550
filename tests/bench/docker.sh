#!/usr/bin/env bash
# Benchmark: claw against the Docker CLI and docker-compose on the same
# Docker Engine (issue 14).
#
#  1. N containers (default 50) on one network with one volume, --runs times
#     (default 3) alternately: `claw apply` / `claw destroy`; the same
#     creates and removals issued straight from the docker CLI at claw's
#     concurrency (`docker run -d` / `docker rm -f`, 10 at once with xargs
#     -P, as `--parallelism` 10); `docker-compose up -d` / `down`. Medians,
#     and claw's ratios to both (targets: <= 1.05x the CLI, <= 0.9x compose);
#  2. a no-change `claw plan -v` over N and over M containers (default 500),
#     printing the Docker API call count (it must not grow with the count).
#
# Usage: tests/bench/docker.sh [--claw PATH] [--n 50] [--m 500] [--runs 3]
# Needs: a running dockerd, docker-compose (Debian's), busybox-static, and a
# claw binary with the docker provider (default: cargo build --release, into
# $CARGO_TARGET_DIR or target/).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=50
M=500
RUNS=3
CLAW=""
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --m) M="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done

CLAW="$(bench_claw "$CLAW")"
command -v docker-compose >/dev/null || { echo "docker-compose is not installed (apt-get install docker-compose)" >&2; exit 1; }
docker version >/dev/null || { echo "no Docker Engine answers" >&2; exit 1; }
BUSYBOX="$(command -v busybox || true)"
[ -n "$BUSYBOX" ] || { echo "busybox is not installed (apt-get install busybox-static)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/claw-bench-docker.XXXXXX)"
SUFFIX="$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')"
STACK="bench-$SUFFIX"
PROJECT="cbench$SUFFIX"
IMAGE="claw-bench/busybox:1"

cleanup() {
  (cd "$WORK/compose" 2>/dev/null && docker-compose -p "$PROJECT" down -v -t 1 >/dev/null 2>&1) || true
  for s in "$STACK" "$STACK-m"; do
    docker ps -aq --filter "label=claw.dev/stack=$s" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "label=claw.dev/stack=$s" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker volume ls -q --filter "label=claw.dev/stack=$s" | xargs -r docker volume rm >/dev/null 2>&1 || true
  done
  docker rmi "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The image both tools run: FROM scratch with a static busybox (nothing is pulled).
mkdir -p "$WORK/image"
cp "$BUSYBOX" "$WORK/image/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sleep", "86400"]\n' > "$WORK/image/Dockerfile"
docker build -q -t "$IMAGE" "$WORK/image" >/dev/null

# claw.toml with n containers on one network, one shared volume.
claw_config() { # dir stack n
  mkdir -p "$1"
  {
    printf '[stack]\nname = "%s"\n\n[provider.docker]\ntype = "docker"\n\n' "$2"
    printf '[docker_network.net]\n\n[docker_volume.data]\n\n'
    printf '[docker_container.c]\nfor_each = ['
    for i in $(seq -w 1 "$3"); do printf '"c%s",' "$i"; done
    printf ']\nimage = "%s"\ninit = true\n' "$IMAGE"
    printf 'networks = ["${docker_network.net.name}"]\n'
    printf 'mounts = [{ type = "volume", source = "${docker_volume.data.name}", target = "/data" }]\n'
  } > "$1/claw.toml"
}

# The same for docker-compose (file format 2.4: `init` is supported).
compose_config() { # dir n
  mkdir -p "$1"
  {
    printf 'version: "2.4"\nservices:\n'
    for i in $(seq -w 1 "$2"); do
      printf '  c%s:\n    image: %s\n    init: true\n    networks: [net]\n    volumes: ["data:/data"]\n' "$i" "$IMAGE"
    done
    printf 'networks:\n  net: {}\nvolumes:\n  data: {}\n'
  } > "$1/docker-compose.yml"
}

claw_config "$WORK/claw" "$STACK" "$N"
compose_config "$WORK/compose" "$N"

echo "== $N containers, one network, one volume (Docker $(docker version -f '{{.Server.Version}}'), $(nproc) cores, medians of $RUNS interleaved runs)"

# docker-compose 1.29 deadlocks in its thread pool ("Pending: {…}" for ever,
# every API call answered) when COMPOSE_PARALLEL_LIMIT (default 64) is below
# the number of services; with a limit above it, it runs everything at once
# and completes (and is at its fastest). Retried in case it stalls anyway;
# only a completed attempt is timed.
export COMPOSE_PARALLEL_LIMIT=$(( N + 100 ))
compose_up_once() {
  local attempt t0 t1
  for attempt in 1 2 3; do
    t0=$(now_ms)
    if (cd "$WORK/compose" && timeout 300 docker-compose -p "$PROJECT" up -d >/dev/null 2>&1); then
      t1=$(now_ms); echo $((t1 - t0)); return
    fi
    echo "(docker-compose up stalled, attempt $attempt; retrying)" >&2
    (cd "$WORK/compose" && docker-compose -p "$PROJECT" down -v -t 1 >/dev/null 2>&1) || true
  done
  echo "docker-compose up never completed" >&2; exit 1
}
count() { docker ps -aq --filter "$1" | wc -l; }

ca=() cd_=() ra=() rd=() pa=() pd=()
for r in $(seq "$RUNS"); do
  ca+=("$(timed "$WORK/claw-apply.log" "$CLAW" -C "$WORK/claw" apply --auto-approve -q)")
  [ "$(count "label=claw.dev/stack=$STACK")" -eq "$N" ] || { echo "claw did not start $N containers" >&2; exit 1; }
  if [ "$r" = 1 ]; then
    set +e
    "$CLAW" -C "$WORK/claw" plan --detailed-exitcode -q >/dev/null; code=$?
    set -e
    [ "$code" -eq 0 ] || { echo "plan after apply is not empty (exit $code)" >&2; exit 1; }
    calls_n=$("$CLAW" -C "$WORK/claw" plan -v 2>&1 | sed -n 's/.*: \([0-9]*\) docker api calls.*/\1/p' | head -1)
  fi
  cd_+=("$(timed "$WORK/claw-destroy.log" "$CLAW" -C "$WORK/claw" destroy --auto-approve -q)")
  [ "$(count "label=claw.dev/stack=$STACK")" -eq 0 ] || { echo "claw destroy left containers" >&2; exit 1; }

  # The same creates straight from the CLI, at claw's concurrency.
  docker network create "$PROJECT-raw" >/dev/null
  docker volume create "$PROJECT-raw" >/dev/null
  ra+=("$(timed "$WORK/raw-up.log" sh -c "seq -w 1 $N | xargs -P 10 -I{} docker run -d --init --name $PROJECT-raw{} --network $PROJECT-raw -v $PROJECT-raw:/data $IMAGE")")
  [ "$(count "name=$PROJECT-raw")" -eq "$N" ] || { echo "the CLI did not start $N containers" >&2; exit 1; }
  rd+=("$(timed "$WORK/raw-rm.log" sh -c "docker ps -aq --filter name=$PROJECT-raw | xargs -P 10 -n 1 docker rm -f")")
  docker network rm "$PROJECT-raw" >/dev/null
  docker volume rm "$PROJECT-raw" >/dev/null

  pa+=("$(compose_up_once)")
  [ "$(count "label=com.docker.compose.project=$PROJECT")" -eq "$N" ] || { echo "compose did not start $N containers" >&2; exit 1; }
  pd+=("$(cd "$WORK/compose" && timed "$WORK/compose-down.log" docker-compose -p "$PROJECT" down -v)")
  echo "run $r: apply claw ${ca[-1]} / cli ${ra[-1]} / compose ${pa[-1]} ms; destroy claw ${cd_[-1]} / cli ${rd[-1]} / compose ${pd[-1]} ms" >&2
done

m() { printf '%s\n' "$@" | median; }
c_up=$(m "${ca[@]}"); c_down=$(m "${cd_[@]}"); r_up=$(m "${ra[@]}"); r_down=$(m "${rd[@]}"); p_up=$(m "${pa[@]}"); p_down=$(m "${pd[@]}")
printf '%-34s %7d ms\n' "docker run -d, 10 at once" "$r_up"
printf '%-34s %7d ms\n' "docker-compose up -d" "$p_up"
printf '%-34s %7d ms   %sx cli   %sx compose\n' "claw apply" "$c_up" "$(ratio "$c_up" "$r_up")" "$(ratio "$c_up" "$p_up")"
printf '%-34s %7d ms\n' "docker rm -f, 10 at once" "$r_down"
printf '%-34s %7d ms\n' "docker-compose down" "$p_down"
printf '%-34s %7d ms   %sx cli   %sx compose\n' "claw destroy" "$c_down" "$(ratio "$c_down" "$r_down")" "$(ratio "$c_down" "$p_down")"

echo "== no-change plan: Docker API calls"
claw_config "$WORK/claw-m" "$STACK-m" "$M"
(cd "$WORK/claw-m" && "$CLAW" apply --auto-approve -q >/dev/null)
t0=$(now_ms)
calls_m=$(cd "$WORK/claw-m" && "$CLAW" plan -v 2>&1 | sed -n 's/.*: \([0-9]*\) docker api calls.*/\1/p' | head -1)
t1=$(now_ms)
printf '%-34s %7s calls\n' "plan, $N containers" "$calls_n"
printf '%-34s %7s calls   (%d ms)\n' "plan, $M containers" "$calls_m" $((t1 - t0))
(cd "$WORK/claw-m" && "$CLAW" destroy --auto-approve -q >/dev/null)

fail=0
within() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a <= f * b) }'; }
if [ "$calls_m" != "$calls_n" ]; then echo "FAIL: the call count grows with the container count" >&2; fail=1; fi
within "$c_up" "$r_up" 1.05 || { echo "MISS: claw apply is above 1.05x the CLI" >&2; fail=1; }
within "$c_down" "$r_down" 1.05 || { echo "MISS: claw destroy is above 1.05x the CLI" >&2; fail=1; }
within "$c_up" "$p_up" 0.9 || { echo "MISS: claw apply is above 0.9x compose" >&2; fail=1; }
within "$c_down" "$p_down" 0.9 || { echo "MISS: claw destroy is above 0.9x compose" >&2; fail=1; }
exit $fail
