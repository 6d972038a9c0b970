#!/bin/sh
# Uninstalls the release; a release that was never installed counts as done.
# Run by the uninstall Job as `/bin/sh -c` in the runner image (busybox sh). Every word that
# comes from the enablement is a quoted variable after `--`, so that none can be read as an option.
set -eu
if ! status=$(helm status --namespace="$NAMESPACE" -- "$RELEASE" 2>&1); then
  case "$status" in
    *"release: not found"*)
      echo "release $RELEASE is not installed"
      exit 0
      ;;
  esac
  # Any other failure (no rights, no API server) says nothing about the release: fail, so the
  # step is retried rather than the release left behind.
  echo "helm status $RELEASE failed: $status" >&2
  exit 1
fi
# Only a release of this enablement's (labelled with its uid, or unlabelled and installed by it
# before releases were labelled: ADOPT_UNLABELLED) is uninstalled; another is left untouched.
release_with() {
  helm list --namespace="$NAMESPACE" --all --filter="^$RELEASE\$" --selector="$1" -q
}
# Each list is its own assignment, so that a failing helm fails the script (set -e).
ours=$(release_with "$OWNER_LABEL=$OWNER_UID")
owned=$(release_with "$OWNER_LABEL")
if [ -z "$ours" ]; then
  if [ "${ADOPT_UNLABELLED:-false}" != true ] || [ -n "$owned" ]; then
    echo "release $RELEASE in $NAMESPACE was not made by this enablement: nothing to uninstall, left untouched"
    exit 0
  fi
fi
exec helm uninstall --namespace="$NAMESPACE" --wait --timeout="${TIMEOUT_SECONDS}s" -- "$RELEASE"
