# gatekeeper — build, test, demo and benchmark from a clean checkout.
#
# Every target installs the Debian packages it needs when they are missing (we are root
# in CI and on the demo machine), so `make demo` and `make test` work on a fresh Debian.

SHELL := /bin/bash
CARGO ?= cargo
VENV := target/venv
PYTHON := $(VENV)/bin/python3
APT_STAMP := target/.apt-updated

# Debian packages by the command they provide: command:package.
TEST_TOOLS := ip:iproute2 ping:iputils-ping iperf3:iperf3 nft:nftables ethtool:ethtool \
              tcpdump:tcpdump python3:python3
BENCH_TOOLS := $(TEST_TOOLS) sockperf:sockperf taskset:util-linux

.PHONY: all build test test-unit test-netns test-demo lint demo bench bench-quick fuzz deps-test deps-bench venv clean help

all: build

help:
	@echo "make build   release binaries: target/release/gatekeeperd, target/release/gkctl"
	@echo "make test    formatting, clippy, unit/property tests, network-namespace integration tests (root)"
	@echo "make demo    a simulated HMI, intruder and Modbus PLC with the gatekeeper between them (root)"
	@echo "make bench   forwarding rate and latency against the Linux bridge; writes BENCHMARKS.md (root)"
	@echo "make fuzz    every fuzz target for FUZZ_SECONDS each (default 60; needs cargo-fuzz and nightly)"

build:
	$(CARGO) build --release --locked -p gatekeeperd -p gkctl

# Install each missing tool's package; `apt-get update` once per checkout.
define install_tools
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  mkdir -p target; [ -f $(APT_STAMP) ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch $(APT_STAMP); }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps-test:
	$(call install_tools,$(TEST_TOOLS))

deps-bench:
	$(call install_tools,$(BENCH_TOOLS))

# A Python environment with the real protocol peers (pymodbus and friends) used by the
# demo and the namespace tests: one requirements file per protocol in tests/peers/.
PEER_REQUIREMENTS := $(sort $(wildcard firmware/gatekeeperd/tests/peers/requirements-*.txt))
venv: $(VENV)/.installed
$(VENV)/.installed: $(PEER_REQUIREMENTS)
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(addprefix -r ,$(PEER_REQUIREMENTS))
	@touch $@

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test-unit:
	$(CARGO) test --locked --workspace --lib --bins

# Namespace tests need root: they build plant - gatekeeper - asset topologies.
test-netns: deps-test venv
	GK_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --locked --workspace --tests -- --test-threads=2

test: deps-test venv lint
	GK_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --locked --workspace -- --test-threads=2
	$(MAKE) --no-print-directory test-demo

# The demo doubles as a smoke test (it exits 1 when a step does not turn out as the
# policy says); here on the debug daemon that `cargo test` just built.
test-demo: deps-test venv
	$(CARGO) build --locked -p gatekeeperd
	@NO_COLOR=1 GATEKEEPERD=$(abspath target/debug/gatekeeperd) PYTHON=$(abspath $(PYTHON)) \
	  POLICY=$(abspath config/examples/demo.toml) bash firmware/gatekeeperd/demo/demo.sh \
	  > target/demo-check.log 2>&1 \
	  && echo "demo: every step turned out as the policy says (log: target/demo-check.log)" \
	  || { cat target/demo-check.log; exit 1; }

demo: deps-test venv build
	GATEKEEPERD=$(abspath target/release/gatekeeperd) PYTHON=$(abspath $(PYTHON)) \
	  POLICY=$(abspath config/examples/demo.toml) bash firmware/gatekeeperd/demo/demo.sh

bench: deps-bench build
	$(CARGO) build --release --locked -p gk-bench
	python3 firmware/bench/bench.py --out BENCHMARKS.md

bench-quick: deps-bench build
	$(CARGO) build --release --locked -p gk-bench
	python3 firmware/bench/bench.py --quick --out target/BENCHMARKS.quick.md

# Fuzzing is not part of `make test`: it needs nightly and time. Targets live in
# firmware/<crate>/fuzz (each its own workspace); findings land in their artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := packet:dissect policy:policy dataplane:pipeline \
                inspect:modbus inspect:dnp3 inspect:enip inspect:enip_io inspect:s7 \
                inspect:iec104 inspect:opcua inspect:bacnet bundle:bundle bundle:audit bundle:update
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do crate=$${t%%:*}; target=$${t#*:}; \
	  echo "== $$crate/$$target for $(FUZZ_SECONDS) s"; \
	  (cd firmware/$$crate && $(CARGO) +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
	    | grep -E "^(stat::|==|SUMMARY|Done)" ) || exit 1; \
	done

clean:
	$(CARGO) clean
