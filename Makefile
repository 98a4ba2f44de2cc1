# The set-up commands of the README. Each installs what it needs and skips work already done.
CARGO ?= cargo
SCENARIO ?= scenarios/quick.toml

.PHONY: run test bench
BENCH ?=

## Run the default scenario on the local emulator (needs root for namespaces and cgroups).
run:
	@scripts/deps.sh run
	$(CARGO) build --release --bins
	./target/release/isobench run $(SCENARIO)

## Run the whole test suite (root tests skip with a message when not root, and fail if CI is set): the fault suite in
## full, and the AWS backend against LocalStack and moto (installed into .venv/emulators by deps.sh).
test:
	@scripts/deps.sh test
	$(CARGO) build --workspace --bins --features isobench/aws
	ISOBENCH_FAULT_SUITE=full $(CARGO) test --workspace --no-fail-fast --features isobench/aws
	@# The default build refuses --target aws, saying how to enable it. `--workspace` keeps the
	@# dependency features the same as above, so only the isobench package itself is rebuilt.
	$(CARGO) test --workspace --test integration without_the_feature

## The benchmarks (README, Benchmarks): every group, or one with BENCH (e.g. BENCH=aws/, the
## deploy/teardown of every tier on LocalStack and moto, which the bench starts itself). Needs
## the pinned emulators (installed here) and the release binaries (the workload; `invoke/`).
bench:
	@scripts/deps.sh bench
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench --features aws --bench bench_main -- $(BENCH)
