#!/usr/bin/env bash
# Benchmark: a no-change `claw plan` over 300 Kubernetes objects of 8 kinds
# (Namespace, ConfigMap, Secret, Service, ServiceAccount, Deployment, Role,
# NetworkPolicy in 4 group versions), against the Kubernetes API double
# (tests/doubles/kube-api) on a loopback port.
#
# It applies the objects (timed, with the API requests the double counted:
# at most one per object plus discovery and lists), then times
# `claw -v plan --detailed-exitcode` and
# prints the API requests that plan made, as claw counts them (`-v`) and as
# the double counts them. They must be about one list per kind plus one
# discovery request per group version (8 + 4 = 12), not one per object; the
# script fails above 2 per kind plus discovery.
#
# Then, beside kubectl (issue 14): the 301 objects of the issue (one
# Namespace, 75 each of ConfigMap, Secret, Service, Deployment), applied
# from nothing by `claw apply` and by `kubectl apply --server-side`
# alternately (--runs times, medians), with the requests the double counted
# for each. kubectl runs with --validate=false (the double serves no
# OpenAPI document) and its discovery cache warm after the first run: both
# spare kubectl requests. Skipped (said so) when kubectl is not installed.
#
# Usage: tests/bench/kubernetes.sh [--claw PATH] [--double PATH] [--objects 300]
#                                  [--runs 5]
# Needs: a claw binary (default: cargo build --release, into
# $CARGO_TARGET_DIR or target/), python3 (free port, JSON), kubectl for
# the comparison.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLAW=""
DOUBLE=""
OBJECTS=300
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --claw) CLAW="$2"; shift 2 ;;
    --double) DOUBLE="$2"; shift 2 ;;
    --objects) OBJECTS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done

ROOT="$BENCH_ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CLAW="$(bench_claw "$CLAW")"
if [ -z "$DOUBLE" ]; then
  (cd "$ROOT" && cargo build --release -p kube-api-double --bin kube-api-double >&2)
  DOUBLE="$TARGET/release/kube-api-double"
fi

WORK="$(mktemp -d /tmp/claw-bench-k8s.XXXXXX)"
DOUBLE_PID=""
cleanup() {
  [ -n "$DOUBLE_PID" ] && kill "$DOUBLE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$DOUBLE" --listen "127.0.0.1:$PORT" --kubeconfig "$WORK/kubeconfig" > "$WORK/double.log" 2>&1 &
DOUBLE_PID=$!
for _ in $(seq 50); do
  [ -s "$WORK/kubeconfig" ] && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT"

# --- 300 objects of 8 kinds --------------------------------------------------
python3 - "$OBJECTS" > "$WORK/objects.yaml" <<'PY'
import sys
n = int(sys.argv[1]) - 1          # one Namespace, the rest spread over 7 kinds
kinds = ["ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "Role", "NetworkPolicy"]
docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n"]
for i in range(n):
    k = kinds[i % len(kinds)]
    name = f"{k.lower()}-{i}"
    if k == "ConfigMap":
        docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: bench\ndata:\n  key: value-{i}\n")
    elif k == "Secret":
        docs.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: bench\nstringData:\n  token: t-{i}\n")
    elif k == "Service":
        docs.append(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  selector: {{app: a{i}}}\n  ports: [{{name: http, port: 80}}]\n")
    elif k == "ServiceAccount":
        docs.append(f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: bench\n")
    elif k == "Deployment":
        docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  selector: {{matchLabels: {{app: a{i}}}}}\n  template:\n    metadata: {{labels: {{app: a{i}}}}}\n    spec:\n      containers: [{{name: app, image: 'nginx:1.27', ports: [{{containerPort: 80}}]}}]\n")
    elif k == "Role":
        docs.append(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: bench\nrules: [{{apiGroups: [''], resources: [pods], verbs: [get, list]}}]\n")
    else:
        docs.append(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  podSelector: {{matchLabels: {{app: a{i}}}}}\n  policyTypes: [Ingress]\n")
print("---\n".join(docs))
PY
cat > "$WORK/claw.toml" <<TOML
[stack]
name = "bench"

[provider.k8s]
type = "kubernetes"
kubeconfig = "$WORK/kubeconfig"
namespace = "bench"

[k8s_manifest.objects]
file = "objects.yaml"
TOML

reset_requests() {
  python3 -c "import urllib.request as u; u.urlopen(u.Request('$URL/_double/requests', method='DELETE'))"
}
double_requests() {
  python3 -c "import json,urllib.request as u; print(json.load(u.urlopen('$URL/_double/requests'))['requests'])"
}

# Runs `claw $1 --auto-approve` with the double's counter reset; prints the
# time and the requests; fails above one request per object plus discovery
# and two lists per kind.
one_per_object() {
  reset_requests
  local start end count
  start=$(date +%s%N)
  "$CLAW" "$1" --auto-approve > "$WORK/$1.log" 2>&1 || { cat "$WORK/$1.log" >&2; exit 1; }
  end=$(date +%s%N)
  count="$(double_requests)"
  echo "kubernetes: $1 of $OBJECTS objects: $(( (end - start) / 1000000 )) ms, $count API requests (counted by the API double; at most one per object plus discovery and lists: $(( OBJECTS + 2 * 8 + 4 )))"
  if [ "$count" -gt $(( OBJECTS + 2 * 8 + 4 )) ]; then
    echo "kubernetes: more than one request per object in $1" >&2
    exit 1
  fi
}

cd "$WORK"
one_per_object apply
reset_requests

START=$(date +%s%N)
set +e
"$CLAW" -v plan --detailed-exitcode > "$WORK/plan.out" 2> "$WORK/plan.err"
CODE=$?
set -e
END=$(date +%s%N)
if [ "$CODE" -ne 0 ]; then
  echo "no-change plan exited $CODE (wanted 0)" >&2
  cat "$WORK/plan.out" "$WORK/plan.err" >&2
  exit 1
fi
CLAW_COUNT="$(grep -ho '[0-9]* kubernetes api requests' "$WORK/plan.out" "$WORK/plan.err" | head -1 | cut -d' ' -f1)"
DOUBLE_COUNT="$(double_requests)"
OBJS="$(grep -c '^kind:' "$WORK/objects.yaml")"
echo "kubernetes: no-change plan over $OBJS objects of 8 kinds: $(( (END - START) / 1000000 )) ms"
echo "kubernetes: API requests: $CLAW_COUNT (counted by claw), $DOUBLE_COUNT (counted by the API double); expected about 8 lists + 4 discovery = 12"
if [ "$DOUBLE_COUNT" -gt $(( 2 * 8 + 4 )) ]; then
  echo "kubernetes: too many requests for a no-change plan" >&2
  exit 1
fi

one_per_object destroy

# --- beside kubectl --------------------------------------------------------
if ! command -v kubectl >/dev/null; then
  echo "kubectl: not installed, the comparison is SKIPPED (Debian: kubernetes-client)"
  exit 0
fi
mkdir -p "$WORK/peer"
python3 - > "$WORK/peer/objects.yaml" <<'PY'
docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: peer\n"]
for i in range(75):
    docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: peer\ndata:\n  key: value-{i}\n")
    docs.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: peer\nstringData:\n  token: t-{i}\n")
    docs.append(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: peer\nspec:\n  selector: {{app: a{i}}}\n  ports: [{{name: http, port: 80}}]\n")
    docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\n  namespace: peer\nspec:\n  selector: {{matchLabels: {{app: a{i}}}}}\n  template:\n    metadata: {{labels: {{app: a{i}}}}}\n    spec:\n      containers: [{{name: app, image: 'nginx:1.27', ports: [{{containerPort: 80}}]}}]\n")
print("---\n".join(docs))
PY
cat > "$WORK/peer/claw.toml" <<TOML
[stack]
name = "peer"

[provider.k8s]
type = "kubernetes"
kubeconfig = "$WORK/kubeconfig"
namespace = "peer"

[k8s_manifest.objects]
file = "objects.yaml"
TOML
export KUBECONFIG="$WORK/kubeconfig"
ca=() ka=() creq="" kreq=""
for r in $(seq "$RUNS"); do
  reset_requests
  ca+=("$(timed "$WORK/peer/claw.log" "$CLAW" -C "$WORK/peer" apply --auto-approve -q)")
  creq="$(double_requests)"
  timed "$WORK/peer/destroy.log" "$CLAW" -C "$WORK/peer" destroy --auto-approve -q >/dev/null
  reset_requests
  ka+=("$(timed "$WORK/peer/kubectl.log" kubectl apply --server-side --validate=false -f "$WORK/peer/objects.yaml")")
  kreq="$(double_requests)"
  timed "$WORK/peer/kdelete.log" kubectl delete namespace peer >/dev/null
  echo "run $r: claw apply ${ca[-1]} ms ($creq requests), kubectl apply --server-side ${ka[-1]} ms ($kreq requests)" >&2
done
c=$(printf '%s\n' "${ca[@]}" | median); k=$(printf '%s\n' "${ka[@]}" | median)
echo "kubernetes: apply of 301 objects (1 Namespace, 75 each of ConfigMap, Secret, Service, Deployment), medians of $RUNS interleaved runs:"
printf '  claw apply %d ms, %s requests; kubectl %s apply --server-side %d ms, %s requests; claw/kubectl %s\n' \
  "$c" "$creq" "$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p')" "$k" "$kreq" "$(ratio "$c" "$k")"
awk -v a="$c" -v b="$k" 'BEGIN { exit !(a <= 0.5 * b) }' || { echo "MISS: claw apply is above 0.5x kubectl" >&2; exit 1; }
