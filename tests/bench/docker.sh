#!/usr/bin/env bash
# Benchmark: claw against docker-compose on the same Docker Engine.
#
#  1. the same N containers (default 100) on one network with one volume:
#     `claw apply` vs `docker-compose up -d`, `claw destroy` vs `docker-compose down`;
#  2. a no-change `claw plan -v` over 100 and over M containers (default 500),
#     printing the Docker API call count (it must not grow with the count).
#
# Usage: tests/bench/docker.sh [--claw PATH] [--n 100] [--m 500]
# Needs: a running dockerd, docker-compose (Debian's), busybox-static, and a
# claw binary with the docker provider (default: cargo build --release, into
# $CARGO_TARGET_DIR or target/).
set -euo pipefail

N=100
M=500
CLAW=""
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --m) M="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$CLAW" ]; then
  (cd "$ROOT" && cargo build --release --bin claw >&2)
  CLAW="${CARGO_TARGET_DIR:-$ROOT/target}/release/claw"
fi
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

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

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

echo "== $N containers, one network, one volume (Docker $(docker version -f '{{.Server.Version}}'), $(nproc) cores)"

# docker-compose 1.29 deadlocks in its thread pool ("Pending: {…}" for ever,
# every API call answered) when COMPOSE_PARALLEL_LIMIT (default 64) is below
# the number of services; with a limit above it, it runs everything at once
# and completes (and is at its fastest). Retried in case it stalls anyway;
# only a completed attempt is timed.
export COMPOSE_PARALLEL_LIMIT=$(( N + 100 ))
compose_up=""
for attempt in 1 2 3; do
  t=$(now)
  if (cd "$WORK/compose" && timeout 300 docker-compose -p "$PROJECT" up -d >/dev/null 2>&1); then
    compose_up=$(elapsed "$t")
    break
  fi
  echo "(docker-compose up stalled, attempt $attempt; retrying)" >&2
  (cd "$WORK/compose" && docker-compose -p "$PROJECT" down -v -t 1 >/dev/null 2>&1) || true
done
[ -n "$compose_up" ] || { echo "docker-compose up never completed" >&2; exit 1; }
[ "$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)" -eq "$N" ] || { echo "compose did not start $N containers" >&2; exit 1; }
t=$(now); (cd "$WORK/compose" && docker-compose -p "$PROJECT" down -v >/dev/null 2>&1); compose_down=$(elapsed "$t")

t=$(now); (cd "$WORK/claw" && "$CLAW" apply --auto-approve -q >/dev/null); claw_apply=$(elapsed "$t")
[ "$(docker ps -q --filter "label=claw.dev/stack=$STACK" | wc -l)" -eq "$N" ] || { echo "claw did not start $N containers" >&2; exit 1; }
set +e
(cd "$WORK/claw" && "$CLAW" plan --detailed-exitcode -q >/dev/null); code=$?
set -e
[ "$code" -eq 0 ] || { echo "plan after apply is not empty (exit $code)" >&2; exit 1; }
calls_n=$(cd "$WORK/claw" && "$CLAW" plan -v 2>&1 | sed -n 's/.*: \([0-9]*\) docker api calls.*/\1/p' | head -1)
t=$(now); (cd "$WORK/claw" && "$CLAW" destroy --auto-approve -q >/dev/null); claw_destroy=$(elapsed "$t")
[ "$(docker ps -aq --filter "label=claw.dev/stack=$STACK" | wc -l)" -eq 0 ] || { echo "claw destroy left containers" >&2; exit 1; }

# The Engine's own floor for the same work: `docker run -d` / `docker rm -f`,
# 10 at a time, straight from the CLI.
docker network create "$PROJECT-raw" >/dev/null
docker volume create "$PROJECT-raw" >/dev/null
t=$(now)
seq -w 1 "$N" | xargs -P 10 -I{} docker run -d --init --name "$PROJECT-raw{}" --network "$PROJECT-raw" -v "$PROJECT-raw:/data" "$IMAGE" >/dev/null
raw_up=$(elapsed "$t")
t=$(now)
docker ps -aq --filter "name=$PROJECT-raw" | xargs -P 10 -n 1 docker rm -f >/dev/null
raw_rm=$(elapsed "$t")
docker network rm "$PROJECT-raw" >/dev/null
docker volume rm "$PROJECT-raw" >/dev/null

ratio() { echo "scale=2; $1 / $2" | bc; }
printf '%-28s %8.2fs\n' "docker-compose up -d" "$compose_up"
printf '%-28s %8.2fs   (%sx compose)\n' "claw apply" "$claw_apply" "$(ratio "$claw_apply" "$compose_up")"
printf '%-28s %8.2fs   (%sx compose)\n' "docker run -d, 10 at once" "$raw_up" "$(ratio "$raw_up" "$compose_up")"
printf '%-28s %8.2fs\n' "docker-compose down" "$compose_down"
printf '%-28s %8.2fs   (%sx compose)\n' "claw destroy" "$claw_destroy" "$(ratio "$claw_destroy" "$compose_down")"
printf '%-28s %8.2fs   (%sx compose)\n' "docker rm -f, 10 at once" "$raw_rm" "$(ratio "$raw_rm" "$compose_down")"

echo "== no-change plan: Docker API calls"
claw_config "$WORK/claw-m" "$STACK-m" "$M"
(cd "$WORK/claw-m" && "$CLAW" apply --auto-approve -q >/dev/null)
t=$(now)
calls_m=$(cd "$WORK/claw-m" && "$CLAW" plan -v 2>&1 | sed -n 's/.*: \([0-9]*\) docker api calls.*/\1/p' | head -1)
plan_m=$(elapsed "$t")
printf '%-28s %8s calls\n' "plan, $N containers" "$calls_n"
printf '%-28s %8s calls   (%.2fs)\n' "plan, $M containers" "$calls_m" "$plan_m"
(cd "$WORK/claw-m" && "$CLAW" destroy --auto-approve -q >/dev/null)

fail=0
if [ "$calls_m" != "$calls_n" ]; then echo "FAIL: the call count grows with the container count" >&2; fail=1; fi
if [ "$(echo "$claw_apply > 0.5 * $compose_up" | bc)" -eq 1 ]; then echo "MISS: claw apply is above 0.5x compose up" >&2; fail=1; fi
if [ "$(echo "$claw_destroy > 0.5 * $compose_down" | bc)" -eq 1 ]; then echo "MISS: claw destroy is above 0.5x compose down" >&2; fail=1; fi
exit $fail
