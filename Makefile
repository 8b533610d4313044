# The one test command: installs what the suite needs, then lints and runs every test.
# `.ci/run` calls `make test`, and so does a developer on a fresh machine.
.PHONY: test deps lint unit crds demo

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

# Live demo: real apiserver, Prometheus and controller moving volumes on the Mayastor simulator.
demo: deps
	cargo test -p couchestor-controller --test demo -- --demo
