#!/bin/sh
# Installs the chart; recovers a release an interrupted install left pending first.
# Run by the install Job as `/bin/sh -c` in the runner image (busybox sh). Every word that comes
# from the enablement is a quoted variable after `--`, so that none can be read as an option.
set -eu
if [ -n "${HELM_REPO_USERNAME:-}" ]; then
  case "$CHART_REPOSITORY" in
    oci://*)
      host=$(printf '%s' "${CHART_REPOSITORY#oci://}" | cut -d/ -f1)
      printf '%s' "$HELM_REPO_PASSWORD" | helm registry login --username="$HELM_REPO_USERNAME" --password-stdin -- "$host" ;;
    *)
      printf '%s' "$HELM_REPO_PASSWORD" | helm repo add --username="$HELM_REPO_USERNAME" --password-stdin -- federation "$CHART_REPOSITORY" ;;
  esac
fi
# The options that name where the chart comes from, then the chart itself.
set --
case "$CHART_REPOSITORY" in
  oci://*) chart="$CHART_REPOSITORY/$CHART_NAME" ;;
  *) if [ -n "${HELM_REPO_USERNAME:-}" ]; then chart="federation/$CHART_NAME"; else chart="$CHART_NAME"; set -- --repo="$CHART_REPOSITORY"; fi ;;
esac
# Whose release it is: one labelled with this enablement's uid is ours; an unlabelled one is
# adopted once, when this enablement had installed it before releases were labelled
# (ADOPT_UNLABELLED); any other is left untouched, and exit code 3 tells the controller why.
release_with() {
  helm list --namespace="$NAMESPACE" --all --filter="^$RELEASE\$" --selector="$1" -q
}
# Each list is its own assignment, so that a failing helm fails the script (set -e).
any=$(release_with "")
ours=$(release_with "$OWNER_LABEL=$OWNER_UID")
owned=$(release_with "$OWNER_LABEL")
if [ -n "$any" ] && [ -z "$ours" ]; then
  if [ "${ADOPT_UNLABELLED:-false}" = true ] && [ -z "$owned" ]; then
    echo "release $RELEASE carries no owner label; this enablement installed it before: adopting it"
  else
    echo "release $RELEASE in $NAMESPACE was not made by this enablement: left untouched" >&2
    exit 3
  fi
fi
state=$(helm status --namespace="$NAMESPACE" -o json -- "$RELEASE" 2>/dev/null | grep -o '"status":"[a-z-]*"' | head -n 1 | cut -d '"' -f 4 || true)
case "$state" in
  pending-install)
    echo "release $RELEASE was left pending-install: uninstalling it first"
    helm uninstall --namespace="$NAMESPACE" --wait -- "$RELEASE" ;;
  pending-upgrade|pending-rollback)
    echo "release $RELEASE was left $state: rolling it back first"
    helm rollback --namespace="$NAMESPACE" --wait -- "$RELEASE" ;;
esac
exec helm upgrade --install "$@" --version="$CHART_VERSION" --namespace="$NAMESPACE" \
  --labels="$OWNER_LABEL=$OWNER_UID" \
  --values=/etc/federation/values/values.yaml --wait --timeout="${TIMEOUT_SECONDS}s" -- "$RELEASE" "$chart"
