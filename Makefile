# Shoal: `make demo` runs the main job in a local lab; `make test` passes every test.
SHELL := /bin/bash
CARGO ?= cargo
# Debian packages the build (clang-19 and libbpf-dev for the eBPF programs), the lab,
# the tests (python3 for their small TCP/UDP clients and servers), the demo and the
# benchmarks (wrk, haproxy, nftables, nginx-light) need; systemd's systemd-analyze checks
# the shipped unit file.
BUILD_PACKAGES := clang-19 libbpf-dev
PACKAGES := $(BUILD_PACKAGES) iproute2 iputils-ping curl procps prometheus bc bind9-dnsutils \
            iperf3 python3 wrk haproxy nftables nginx-light systemd
PREFIX ?= /usr/local

.PHONY: all deps build-deps build test unit-test lab-test demo bench install uninstall lint fmt clean

all: build

# Install missing system packages (apt-get update first); quiet when all are present.
deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Only what building needs (clang-19 and libbpf-dev), for `make install` on a real host.
build-deps:
	@$(MAKE) --no-print-directory deps PACKAGES="$(BUILD_PACKAGES)"

build: deps
	$(CARGO) build --workspace --bins

# Unit tests run in parallel; lab tests (real namespaces, real daemons) one at a time.
test: build
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root: lab tests build network namespaces"; exit 1; }
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test --workspace --test '*' -- --test-threads=1

demo: build
	./scripts/demo.sh

bench: build
	./bench/raft.sh
	./bench/scheduler.sh
	./bench/scale.sh
	./bench/overlay.sh
	./bench/lb.sh
	./bench/lb-scale.sh

# shoal and shoald in $(PREFIX)/bin, shoald's systemd unit in $(PREFIX)/lib/systemd/system
# (DESTDIR= for a staging root).
install: build-deps
	$(CARGO) build --release -p shoal --bins
	./scripts/install.sh --from target/release --prefix $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

uninstall:
	./scripts/install.sh --uninstall --prefix $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	-./target/debug/shoal lab down --all
	$(CARGO) clean
