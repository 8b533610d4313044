#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, idempotently:
#   - Debian packages (Prometheus for the Eyes tests, and the tools later suites use);
#   - etcd + kube-apiserver built from Go modules into target/testenv/bin (tests/testenv/);
#   - helm built from Go modules into target/testenv/bin (tests/helm/);
#   - rustfmt and clippy.
# Warm runs take seconds: packages are checked before apt runs, and Go's build cache
# (~/.cache/go-build) plus the module cache (~/go/pkg/mod) make the testenv build a no-op or a link.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(prometheus sysstat qemu-utils libnbd-bin openssl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v go >/dev/null || { echo "setup: Go is required to build the test control plane (tests/testenv)" >&2; exit 1; }
tests/testenv/build.sh
tests/helm/build.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || true
for c in "cargo fmt" "cargo clippy"; do
  $c --version >/dev/null || { echo "setup: '$c' is not available" >&2; exit 1; }
done
echo "setup: done"
