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
exec helm uninstall --namespace="$NAMESPACE" --wait --timeout="${TIMEOUT_SECONDS}s" -- "$RELEASE"
