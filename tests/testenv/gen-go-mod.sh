#!/usr/bin/env bash
# Regenerates go.mod for a Kubernetes version: one replace per staging module, derived from
# upstream's own go.mod (never hand-copied). Usage: gen-go-mod.sh v1.36.3 v3.6.15
set -euo pipefail
K8S=${1:?kubernetes version, e.g. v1.36.3}
ETCD=${2:?etcd version, e.g. v3.6.15}
STAGING="v0.${K8S#v1.}"
cd "$(dirname "$0")"
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module github.com/billyronks/couchestor/tests/testenv"
  echo
  echo "go 1.26"
  echo
  echo "require ("
  echo "	go.etcd.io/etcd/server/v3 $ETCD"
  echo "	k8s.io/kubernetes $K8S"
  echo ")"
  echo
  echo "replace ("
  grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" | awk '{print $1}' | sort -u |
    while read -r m; do echo "	$m => $m $STAGING"; done
  echo ")"
} > go.mod
go mod tidy
