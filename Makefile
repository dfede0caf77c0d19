# ferry's build. `make test` is the one test command; CI runs it via .ci/run.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The binaries that exist so far, of ferryd, ferryctl and ferry.
BINARIES := $(notdir $(wildcard cmd/ferryd cmd/ferryctl cmd/ferry))

.PHONY: all build run test bench lint fmt clean

all: build

## build: compile the binaries into ./bin
build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ $(addprefix ./cmd/,$(BINARIES))

## run: build, then start a throwaway single-node server (ferryd dev)
run: build
	./bin/ferryd dev

## test: every test, as CI runs them (root-only tests skip without root),
## under the race detector
# The end-to-end drill of deploy/local runs last and alone: it drives the
# whole machine (namespaces, nginx, a browser that restarts its requests
# when other tests add network interfaces); it drives the built binaries
# from outside, so -race would check only its own driver.
RACE ?= -race
test:
	@command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v busybox >/dev/null 2>&1 || \
		echo "NOTE: QEMU or busybox missing: the kernel WireGuard suites (tunnel TestKernelSuiteVM, threenode TestThreeNodesKernelVM) skip; .ci/run installs qemu-system-x86 and busybox-static"
	$(GO) test $(RACE) -count=1 -timeout 25m $$($(GO) list ./... | grep -v '/deploy/local$$')
	$(GO) test -count=1 -timeout 15m ./deploy/local
	cd third_party/wireguard-go && $(GO) test $(RACE) -count=1 -run 'WaitPool|Bounded|Trie|CommonBits|LookupCached' ./device/
	cd third_party/wireguard-go && $(GO) test $(RACE) -count=1 ./tun/ ./conn/

## bench: run the benchmarks 5 times and print the medians
bench:
	$(GO) run ./cmd/internal/benchreport

## lint: formatting, go vet and, when installed, staticcheck
lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then \
		echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck ./...; \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" ./...; \
	else echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

## fmt: format the code
fmt:
	gofmt -w .

clean:
	rm -rf bin
