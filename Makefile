# The two set-up commands of the README. Each installs what it needs and skips work already done.
CARGO ?= cargo
SCENARIO ?= scenarios/quick.toml

.PHONY: run test

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
