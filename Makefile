# vxswitch — run `make help` for the targets.
GO        ?= go
BIN       := bin/vxswitch
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 10s

.PHONY: help build test unit bench fuzz fuzz-ci lint demo bench-e2e bench-flood bench-evpn soak flaky deps deb clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/vxswitch
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vxswitch

deps: ## install (as root) or check the Debian packages the tests need
	@bash scripts/deps.sh

test: deps ## vet, every test with the race detector (root: real peers in namespaces), every benchmark once
	$(GO) vet ./...
	VXSWITCH_REQUIRE_ALL=$${VXSWITCH_REQUIRE_ALL-$$( [ "$$(id -u)" = 0 ] && echo 1 )} $(GO) test -race -count=1 -timeout 20m ./...
	# the race detector allocates, so these allocation assertions skip under it: run them without
	VXSWITCH_REQUIRE_ALL=$${VXSWITCH_REQUIRE_ALL-$$( [ "$$(id -u)" = 0 ] && echo 1 )} $(GO) test -count=1 -run 'Alloc' ./dataplane/... ./bench
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...

unit: ## tests without the race detector, quick
	$(GO) test -count=1 ./...

bench: ## benchmarks with allocations, 5 runs (pipe to benchstat)
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./...

fuzz: ## run every fuzzer for FUZZTIME (default 10s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

fuzz-ci: ## every fuzzer for FUZZTIME (default 3s), crashers told apart from harness time-outs (CI)
	@bash scripts/fuzz-ci.sh

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo: build deps ## the original demonstration: six sites, GSLB web, GlusterFS + lsyncd, a site lost and back; verdicts; cleaned up
	bash scripts/demo.sh $(BIN)

bench-e2e: build deps ## iperf3 through vxswitch vs kernel vxlan, tinc, wireguard-go in namespaces (BENCH_PROFILE=quick|full)
	bash scripts/bench-e2e.sh $(BIN)

bench-flood: deps ## (root) TCP between two sites while a third is flooded, each flood in turn, vs unflooded
	bash -o pipefail -c "VXSWITCH_FLOOD_LOAD=1 $(GO) test -count=1 -timeout 20m -run '^TestFloodLoad$$' -v ./e2e | grep -v level="

bench-evpn: deps ## (root) EVPN scale: 100k type-2 routes into one site, 100 vxswitch sites and 300 injected via gobgpd, TCP during a route flap storm
	VXSWITCH_EVPN_SCALE=1 $(GO) test -count=1 -run '^TestIngest$$' -v ./evpn
	bash -o pipefail -c "VXSWITCH_EVPN_SCALE=1 $(GO) test -count=1 -timeout 30m -run '^(TestEVPNHundredsOfSites|TestEVPNHundredSites|TestEVPNFlapStorm)$$' -v ./e2e | grep -v level="

flaky: deps ## (root) the tests that race real daemons or the scheduler, each FLAKY_N (default 5) times: failures, slowest run vs bound
	bash scripts/flaky.sh

SOAK ?= 10m
soak: deps ## (root) SOAK (default 10m) of rekeys, MAC moves, TCP and sequenced UDP; heap and goroutines table
	bash -o pipefail -c "VXSWITCH_SOAK=$(SOAK) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./e2e | grep -v level="

deb: build ## Debian package bin/vxswitch_VERSION_ARCH.deb: unit, sysusers, tmpfiles, vxswitch(8) (scripts/deb.sh)
	bash scripts/deb.sh $(BIN)

clean: ## remove build output
	rm -rf bin
