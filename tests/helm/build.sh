#!/usr/bin/env bash
# Builds Helm v3 from Go modules into $OUT (default: <repo>/target/testenv/bin), like
# tests/testenv/build.sh does for etcd and kube-apiserver. The version is the `tool` pinned in
# go.mod (checksums in go.sum). Skips the build when the binary already matches go.mod/go.sum.
# The ldflags are those of Helm's own Makefile: version stamp, and the Kubernetes version
# `helm lint`/`helm template` assume (client-go's minor, major 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/../../target/testenv/bin}
cd "$here"
HELM=$(awk '$1=="helm.sh/helm/v3"{print $2}' go.mod)
stamp="$OUT/.helm-stamp"
want=$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)
if [[ -x "$OUT/helm" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "helm: $HELM up to date in $OUT"
  exit 0
fi
mkdir -p "$OUT"
K8S=$(awk '$1=="k8s.io/client-go"{print $2}' go.mod)   # v0.MINOR.PATCH
minor=$(echo "$K8S" | cut -d. -f2)
echo "helm: building $HELM into $OUT (cold: a few minutes on 2 cores)"
CGO_ENABLED=0 go build -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
  -o "$OUT/helm" helm.sh/helm/v3/cmd/helm
echo "$want" > "$stamp"
"$OUT/helm" version --short
