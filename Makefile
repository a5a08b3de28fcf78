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

.PHONY: all build test hil test-unit test-netns test-demo lint demo bench bench-quick fuzz deps-test deps-bench venv clean help

all: build

help:
	@echo "make build   release binaries: target/release/gatekeeperd, target/release/gkctl"
	@echo "make test    formatting, clippy, unit/property tests, network-namespace integration tests, the QEMU tests (root)"
	@echo "make demo    a simulated HMI, intruder and Modbus PLC with the gatekeeper between them (root)"
	@echo "make bench   forwarding rate and latency against the Linux bridge; writes BENCHMARKS.md (root)"
	@echo "make image   a board's firmware image: BOARD=qemu-x86_64|qemu-aarch64|x86_64-generic|x86_64-bios|nanopi-r4s [PROFILE=prod|test|dev] [TRUST=DIR KEY=FILE]"
	@echo "make image-check  builds an image twice and compares the bytes (reproducibility)"
	@echo "make qemu    boots out/BOARD/disk.img in QEMU (TCG) with the console on this terminal"
	@echo "make hil     the QEMU tests: builds the QEMU boards' test images and boots them (root)"
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
	$(CARGO) test --locked --workspace --exclude gk-hil --lib --bins

# Namespace tests need root: they build plant - gatekeeper - asset topologies.
test-netns: deps-test venv
	GK_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --locked --workspace --exclude gk-hil --tests -- --test-threads=2

# Everything CI runs: lint, the workspace's tests (unit, property, namespace), the demo as a
# smoke test, then the image tests in QEMU (make hil).
test: deps-test venv lint
	GK_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --locked --workspace --exclude gk-hil -- --test-threads=2
	$(MAKE) --no-print-directory test-demo
	$(MAKE) --no-print-directory hil

# Hardware-in-the-loop: the test images of the QEMU boards and of the x86 boxes (on QEMU
# machines like theirs), booted one VM at a time.
HIL_BOARDS := qemu-x86_64 qemu-aarch64 x86_64-generic x86_64-bios
hil: deps-test venv deps-qemu
	@for b in $(HIL_BOARDS); do $(MAKE) --no-print-directory image BOARD=$$b PROFILE=test || exit 1; done
	@# tests/update.rs installs the same commit as an update (version +update, another root
	@# hash): the binaries the loop built, so this is the image build alone (about 10 s).
	@# +aaa sorts below +update as a version: installed second, it must still boot.
	@arch=$$($(GK_IMAGE) arch --board qemu-x86_64) && \
	  $(GK_IMAGE) build --board qemu-x86_64 --profile test --variant update \
	    --bin-dir target/$$arch-unknown-linux-musl/release --out out/hil-update/qemu-x86_64 && \
	  $(GK_IMAGE) build --board qemu-x86_64 --profile test --variant aaa \
	    --bin-dir target/$$arch-unknown-linux-musl/release --out out/hil-update-aaa/qemu-x86_64 && \
	  $(GK_IMAGE) build --board qemu-x86_64 --profile test --variant failopen --on-failure fail-open \
	    --bin-dir target/$$arch-unknown-linux-musl/release --out out/hil-failopen/qemu-x86_64
	@# --nocapture: each scenario prints its figures and how long its VM ran.
	GK_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --locked -p gk-hil -- --test-threads=1 --nocapture

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

# ---- Firmware images (issue 5; this block belongs to the image builder: image/, bsp/) ----
#   make image BOARD=<board> [PROFILE=prod|test|dev] [TRUST=DIR] [KEY=FILE] [UBOOT_DIR=DIR]
#   make image-check BOARD=<board>   two builds (the second with another umask and TZ), compared
#   make image-lock                  pin image/debian.lock to apt's current candidates
#   make qemu BOARD=qemu-x86_64|qemu-aarch64   boot out/<board>/disk.img (copy-on-write)
# Boards: bsp/*.toml. Images: out/<board>/. Debian packages: target/image-cache/.
BOARD ?= qemu-x86_64
PROFILE ?= test
TRUST ?=
KEY ?=
UBOOT_DIR ?=
GK_IMAGE := target/release/gk-image
IMAGE_TOOLS := dpkg-deb:dpkg depmod:kmod mksquashfs:squashfs-tools veritysetup:cryptsetup-bin \
               objcopy:binutils aarch64-linux-gnu-objcopy:binutils-aarch64-linux-gnu \
               gcc:gcc aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu mkfs.vfat:dosfstools \
               mcopy:mtools mkfs.ext4:e2fsprogs sgdisk:gdisk bmaptool:bmap-tools gzip:gzip git:git
QEMU_TOOLS := qemu-img:qemu-utils qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm
IMAGE_FLAGS = --profile $(PROFILE) $(if $(TRUST),--trust $(TRUST)) $(if $(KEY),--key $(KEY)) \
              $(if $(ON_FAILURE),--on-failure $(ON_FAILURE)) \
              $(if $(UBOOT_DIR),--uboot-dir $(UBOOT_DIR))

.PHONY: image image-check image-lock qemu deps-image deps-qemu image-bins

# Host tools, apt indexes for arm64 too (apt-get download needs them), and the image builder.
deps-image:
	$(call install_tools,$(IMAGE_TOOLS))
	@dpkg --print-foreign-architectures | grep -qx arm64 || { echo "adding the arm64 architecture to apt"; \
	  dpkg --add-architecture arm64 && rm -f $(APT_STAMP); }
	@mkdir -p target; [ -f $(APT_STAMP) ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch $(APT_STAMP); }
	$(CARGO) build --release --locked -p gk-image

# The static binaries for the board's architecture.
image-bins: deps-image
	@arch=$$($(GK_IMAGE) arch --board $(BOARD)) || exit 1; \
	  rustup target list --installed 2>/dev/null | grep -qx $$arch-unknown-linux-musl || \
	    rustup target add $$arch-unknown-linux-musl; \
	  echo "$(CARGO) build --release --locked --target $$arch-unknown-linux-musl -p gatekeeperd -p gkctl -p gk-init"; \
	  $(CARGO) build --release --locked --target $$arch-unknown-linux-musl -p gatekeeperd -p gkctl -p gk-init

# The build of one image; the output directory follows.
IMAGE_BUILD = arch=$$($(GK_IMAGE) arch --board $(BOARD)) && \
  $(GK_IMAGE) build --board $(BOARD) $(IMAGE_FLAGS) --bin-dir target/$$arch-unknown-linux-musl/release --out

image: image-bins
	@$(IMAGE_BUILD) out/$(BOARD)

image-check: image-bins
	@$(IMAGE_BUILD) out/check/$(BOARD)/1
	@echo "second build, with umask 077 and TZ=Pacific/Kiritimati"
	@umask 077; export TZ=Pacific/Kiritimati; $(IMAGE_BUILD) out/check/$(BOARD)/2
	@$(GK_IMAGE) compare out/check/$(BOARD)/1/disk.img out/check/$(BOARD)/2/disk.img
	@for f in disk.img.bmap manifest.json update.gku; do [ ! -f out/check/$(BOARD)/1/$$f ] || \
	  cmp out/check/$(BOARD)/1/$$f out/check/$(BOARD)/2/$$f || exit 1; done; \
	  echo "image-check: $(BOARD) is reproducible (disk.img, bmap, manifest, update identical)"

image-lock: deps-image
	$(GK_IMAGE) lock

# QEMU: TCG, UEFI firmware from Debian (a fresh copy of the variable store each run), the
# disk as virtio-blk through a qcow2 overlay (the image stays untouched), two virtio NICs
# in PCI slots 3 (plant) and 4 (asset) as bsp/qemu-*.toml expect, an i6300esb watchdog,
# the serial console on this terminal (Ctrl-A X quits). Both NICs are user-mode networks
# by default; for traffic through the gatekeeper give socket back-ends, e.g.
#   QEMU_PLANT=socket,listen=127.0.0.1:5550 QEMU_ASSET=socket,listen=127.0.0.1:5551
# and attach two other VMs with -netdev socket,connect=127.0.0.1:5550 / :5551.
QEMU_PLANT ?= user
QEMU_ASSET ?= user,restrict=on
QEMU_MEM ?= 1024
QEMU_EXTRA ?=
QEMU_RUN := out/$(BOARD)/qemu
QEMU_DEVICES = -drive if=none,id=disk,format=qcow2,file=$(QEMU_RUN)/overlay.qcow2 \
  -device virtio-blk-pci,drive=disk,bus=pcie.0,addr=0x5 \
  -netdev $(QEMU_PLANT),id=plant -device virtio-net-pci,netdev=plant,bus=pcie.0,addr=0x3,mac=52:54:00:00:00:01 \
  -netdev $(QEMU_ASSET),id=asset -device virtio-net-pci,netdev=asset,bus=pcie.0,addr=0x4,mac=52:54:00:00:00:02 \
  -device i6300esb,bus=pcie.0,addr=0x6 -action watchdog=reset \
  -nographic -nic none -m $(QEMU_MEM) -smp 2 -accel tcg $(QEMU_EXTRA)
ifeq ($(BOARD),qemu-aarch64)
QEMU_FW := /usr/share/AAVMF/AAVMF_CODE.fd
QEMU_VARS := /usr/share/AAVMF/AAVMF_VARS.fd
QEMU_CMD = qemu-system-aarch64 -machine virt -cpu cortex-a57
else
QEMU_FW := /usr/share/OVMF/OVMF_CODE_4M.fd
QEMU_VARS := /usr/share/OVMF/OVMF_VARS_4M.fd
QEMU_CMD = qemu-system-x86_64 -machine q35 -cpu max -vga none
endif

# QEMU 10 from bookworm-backports: bookworm's own 7.2 would conflict with the qemu-utils
# 10 of the build machines (and lacks igb). The suite is added when missing.
BACKPORTS_LIST := /etc/apt/sources.list.d/gatekeeper-backports.list
deps-qemu:
	@missing=""; for pair in $(QEMU_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	for fw in /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf /usr/share/AAVMF/AAVMF_CODE.fd:qemu-efi-aarch64; do \
	  [ -f $${fw%%:*} ] || missing="$$missing $${fw#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing (QEMU from bookworm-backports)"; \
	  grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/ || { \
	    echo "deb http://deb.debian.org/debian bookworm-backports main" > $(BACKPORTS_LIST); rm -f $(APT_STAMP); }; \
	  mkdir -p target; [ -f $(APT_STAMP) ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch $(APT_STAMP); }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports $$missing >/dev/null; \
	fi

qemu:
	@case "$(BOARD)" in qemu-x86_64|qemu-aarch64) ;; *) echo "make qemu: BOARD=qemu-x86_64 or qemu-aarch64 (not $(BOARD))"; exit 1;; esac
	@[ -f out/$(BOARD)/disk.img ] || { echo "make qemu: no out/$(BOARD)/disk.img; run make image BOARD=$(BOARD) first"; exit 1; }
	@$(MAKE) --no-print-directory deps-qemu
	@mkdir -p $(QEMU_RUN) && cp $(QEMU_VARS) $(QEMU_RUN)/vars.fd && rm -f $(QEMU_RUN)/overlay.qcow2 && \
	  qemu-img create -q -f qcow2 -b $(abspath out/$(BOARD)/disk.img) -F raw $(QEMU_RUN)/overlay.qcow2
	$(QEMU_CMD) -drive if=pflash,format=raw,unit=0,readonly=on,file=$(QEMU_FW) \
	  -drive if=pflash,format=raw,unit=1,file=$(QEMU_RUN)/vars.fd $(QEMU_DEVICES)
