#!/bin/sh
# Uninstalls the release; a release that was never installed counts as done.
# Run by the uninstall Job as `/bin/sh -c` in the runner image (busybox sh). Every word that
# comes from the enablement is a quoted variable after `--`, so that none can be read as an option.
set -eu
if ! helm status --namespace="$NAMESPACE" -- "$RELEASE" >/dev/null 2>&1; then
  echo "release $RELEASE is not installed"
  exit 0
fi
exec helm uninstall --namespace="$NAMESPACE" --wait --timeout="${TIMEOUT_SECONDS}s" -- "$RELEASE"
