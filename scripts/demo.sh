#!/usr/bin/env bash
# The controller's main job on this machine, with nothing but the Rust toolchain:
#   1. brings up a real Kubernetes API server (tests/testenv/, built once and cached),
#   2. applies the CRD from crds/,
#   3. runs federation-controller with --executors=simulated,
#   4. applies the enablements in examples/ (fleet-c fails on purpose),
#   5. shows `kubectl get fe -w` until every job has settled, then asks the progress API.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
testenv=tests/testenv/testenv.sh
kubeconfig="" controller_pid="" watch_pid=""
cleanup() {
  if [[ -n $watch_pid ]]; then
    kill "$watch_pid" 2>/dev/null || true
  fi
  if [[ -n $controller_pid ]] && kill "$controller_pid" 2>/dev/null; then
    wait "$controller_pid" 2>/dev/null || true
  fi
  if [[ -n $kubeconfig ]]; then
    bash "$testenv" down "$kubeconfig" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building federation-controller"
cargo build --locked --bin federation-controller
binary=target/debug/federation-controller

say "starting a local Kubernetes API server (the first run builds it: a few minutes)"
kubeconfig="$(bash "$testenv" up --watch-pid $$ | tail -n 1)"
kubectl="$(bash "$testenv" kubectl-path)"
export KUBECONFIG="$kubeconfig" KUBECACHEDIR="${kubeconfig%/*}/kubecache"
echo "KUBECONFIG=$KUBECONFIG"
echo "kubectl: $kubectl"

say "kubectl apply -f crds/"
"$kubectl" apply -f crds/
"$kubectl" wait --for=condition=Established --timeout=60s crd/federationenablements.federation.fleet.dev

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "starting the controller with --executors=simulated"
echo "This API server serves custom resources only (no nodes, Services, Secrets or Jobs), so the"
echo "subjobs are simulated: each succeeds after a delay and creates nothing outside the status."
# examples/fleet-a.yaml is a Karmada enablement: it installs as cluster-admin, cluster-wide.
"$binary" run --executors=simulated --simulated-delay-ms=1500 --auth=none \
  --allowed-chart-repositories=oci://registry.example.com/charts,https://charts.example.com \
  --allow-cluster-scoped-charts --allowed-installer-roles=federation-chart-installer,cluster-admin \
  --http-addr "127.0.0.1:$port" >"${kubeconfig%/*}/controller.log" 2>&1 &
controller_pid=$!
for _ in $(seq 100); do
  python3 - "$port" <<'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
except Exception:
    sys.exit(1)
PY
  kill -0 "$controller_pid" 2>/dev/null || { cat "${kubeconfig%/*}/controller.log"; exit 1; }
  sleep 0.2
done
echo "controller running (pid $controller_pid, HTTP API on 127.0.0.1:$port, log ${kubeconfig%/*}/controller.log)"

say "kubectl apply -f examples/"
"$kubectl" apply -f examples/

say "kubectl get fe -o wide -w   (until every job has settled)"
"$kubectl" get fe -o wide -w &
watch_pid=$!
settled() {
  local phases
  phases="$("$kubectl" get fe -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}')" || return 1
  [[ -n $phases ]] && ! grep -qvE '^(Success|Failed)$' <<<"$phases"
}
until settled; do sleep 1; done
sleep 1
kill "$watch_pid" 2>/dev/null || true
watch_pid=""

say "curl http://127.0.0.1:$port/v1/clustergroups/fleet-a/federations/progress"
python3 - "$port" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/clustergroups/fleet-a/federations/progress") as r:
    print(json.dumps(json.load(r), indent=2))
PY

echo
echo "The dashboard: http://127.0.0.1:$port/   The terminal view:"
echo "  cargo run -q -p fedprogress -- fleet-c --server http://127.0.0.1:$port"
echo
echo "fleet-c failed on purpose (annotation federation.fleet.dev/simulate-failure). To retry it:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  $kubectl annotate fe fleet-c federation.fleet.dev/simulate-failure-"
echo "  $kubectl annotate fe fleet-c federation.fleet.dev/retry=\"\$(date +%s)\" --overwrite"
if [[ -t 0 ]]; then
  echo
  echo "Everything keeps running; press Ctrl-C to stop it all."
  wait "$controller_pid"
fi
