# bond-appliance — see README.md
SHELL := /bin/bash
GO ?= go
PKGS := ./...

.PHONY: all build deps test unit integration integration-race arch lint fuzz bench perf-guard lab clean

all: build

build:
	$(GO) build -o bin/bond-appliance ./cmd/bond-appliance

## deps: the Debian packages the lab and the tests use (root)
deps:
	bash scripts/deps.sh

## test: the whole suite (what CI runs): lint, unit tests with -race (they
## include ./arch, the import-direction rules), then the integration tests in
## network namespaces and the stress test with -race (root; skipped otherwise
## unless BOND_APPLIANCE_PRIVILEGED=1, which makes them fail instead of skipping).
test: deps lint unit integration integration-race

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

unit:
	$(GO) test -race -short -count=1 $(PKGS)

integration:
	$(GO) test -count=1 -timeout 15m -run 'Integration' -skip 'TestIntegrationStress' -v ./appliance/lab/ 2>&1 | tee /tmp/bond-appliance-integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test.go)' ; exit $${PIPESTATUS[0]}

## integration-race: root; the appliance binary and the tests built with -race,
## running TestIntegrationStress (member hot-remove/add, option storms,
## reloads, status and events clients under traffic; STRESS per mode, modes
## BOND_APPLIANCE_STRESS_MODES, default balance-xor,active-backup) and
## TestIntegrationStressChaos, the chaos soak (carrier flaps, member cycles,
## set storms, reloads, partner LACP restarts, ARP/LACPDU floods, kill -9 once
## restart recovery lands; CHAOS per mode in active-backup, balance-xor and
## 802.3ad; one `chaos:` line each). About 5 minutes with the defaults. The
## long soak by hand: make integration-race CHAOS=30m RACE_RUN=TestIntegrationStressChaos.
## RACE_RUN=Integration runs every integration test with -race instead (too
## long for the 20-minute budget of `make test`).
RACE_RUN ?= TestIntegrationStress
STRESS ?= 60s
CHAOS ?= 60s
RACE_TIMEOUT ?= $(shell echo $$(( 10 + 3 * $$(echo $(CHAOS) | sed -E 's/^([0-9]+)m$$/\1/; t; s/.*/0/') )))m
integration-race:
	BOND_APPLIANCE_RACE=1 BOND_APPLIANCE_STRESS=$(STRESS) BOND_APPLIANCE_CHAOS=$(CHAOS) $(GO) test -race -count=1 -timeout $(RACE_TIMEOUT) -run '$(RACE_RUN)' -v ./appliance/lab/ 2>&1 | tee /tmp/bond-appliance-integration-race.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|stress:|chaos:|\s+\S+_test.go)' ; exit $${PIPESTATUS[0]}

## arch: the import-direction rules alone, with the module's import graph
arch:
	$(GO) test -count=1 -v ./arch

## fuzz: run every fuzzer for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./policy -run '^$$' -fuzz FuzzHash -fuzztime $(FUZZTIME)
	$(GO) test ./policy -run '^$$' -fuzz FuzzEtherType -fuzztime $(FUZZTIME)
	$(GO) test ./lacp -run '^$$' -fuzz FuzzDecodeLACPDU -fuzztime $(FUZZTIME)
	$(GO) test ./lacp -run '^$$' -fuzz FuzzDecodeMarker -fuzztime $(FUZZTIME)
	$(GO) test ./lacp -run '^$$' -fuzz FuzzSystemReceive -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/monitor -run '^$$' -fuzz FuzzParseARP -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/monitor -run '^$$' -fuzz FuzzParseNA -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/alb -run '^$$' -fuzz FuzzHostTx -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/alb -run '^$$' -fuzz FuzzPeerRx -fuzztime $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy ./rings ./umem ./lacp ./appliance/lane

## perf-guard: short hot-path benchmarks vs the committed baseline (benchstat, >10% = regression)
perf-guard:
	perf/guard.sh

## lab: the self-contained demo (root): namespaces + veth + peer, traffic, failover
MODE ?= active-backup
lab: deps build
	./bin/bond-appliance lab --mode $(MODE)

clean:
	rm -rf bin
