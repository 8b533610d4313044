# The one test command: installs what the suite needs, then lints and runs every test.
# `.ci/run` calls `make test`, and so does a developer on a fresh machine.
.PHONY: test deps lint crds operator-yaml demo

test: deps lint
	cargo test --workspace --all-targets

deps:
	tests/setup.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Regenerates deploy/crds/ from the Rust types (a test fails when they drift).
crds:
	cargo run -q -p couchestor-controller -- crd > deploy/crds/crds.yaml
	cp deploy/crds/crds.yaml charts/couchestor/crds/crds.yaml

# Regenerates deploy/operator.yaml (the chart rendered with default values, CRDs included, no
# generated certificates) with helm built from Go modules (a test fails when it drifts).
operator-yaml:
	tests/helm/build.sh
	target/testenv/bin/helm template couchestor charts/couchestor --namespace couchestor-system \
	  --include-crds --set tls.generate=false > deploy/operator.yaml

# Live demo: real apiserver, Prometheus and controller moving volumes on the Mayastor simulator.
demo: deps
	cargo test -p couchestor-controller --test demo -- --demo
