# Entry points of the project: `make run` and `make test` on a fresh clone.

GO      ?= go
NPM     ?= npm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# staticcheck 2026.2.2 (v0.8.2), checked to run with Go 1.26.
STATICCHECK_VERSION ?= v0.8.2

CLIENT_DIR   := test/client
# npm writes node_modules/.package-lock.json on every install: it is older
# than package-lock.json exactly when node_modules is stale.
CLIENT_STAMP := $(CLIENT_DIR)/node_modules/.package-lock.json

.PHONY: run build test test-integration lint node-deps clean

# The Kafka suites use the broker in KAFKA_BROKERS, else an in-process kfake.
KAFKA_SAYS = if [ -n "$${KAFKA_BROKERS:-}" ]; then echo "Kafka suites: broker at $$KAFKA_BROKERS (KAFKA_BROKERS)"; \
	else echo "Kafka suites: in-process kfake cluster (set KAFKA_BROKERS for a real broker)"; fi

run: ## start the server (no configuration needed in development)
	$(GO) run ./cmd/web3-socket

build: ## bin/web3-socket with the version stamped in
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/web3-socket ./cmd/web3-socket

test: node-deps ## unit tests and every suite in test/, with the race detector
	@$(KAFKA_SAYS)
	$(GO) test -race -count=1 ./...
	@# The race detector makes sync.Pool drop what is put back, so the
	@# allocation tests skip under -race: they run here without it.
	$(GO) test -count=1 -run 'AllocatesNothing' ./bridge/

test-integration: node-deps ## only the suites in test/
	@$(KAFKA_SAYS)
	$(GO) test -race -count=1 ./test/...

lint: ## gofmt, go vet, staticcheck
	@unformatted="$$(gofmt -l $$(find . -name '*.go' -not -path './test/client/node_modules/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l lists files that need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

node-deps: $(CLIENT_STAMP) ## the official socket.io-client for the suites

$(CLIENT_STAMP): $(CLIENT_DIR)/package-lock.json $(CLIENT_DIR)/package.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
		echo "cd $(CLIENT_DIR) && $(NPM) ci --no-audit --no-fund"; \
		cd $(CLIENT_DIR) && $(NPM) ci --no-audit --no-fund && touch node_modules/.package-lock.json; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "npm is not installed: the socket.io-client suites cannot run" >&2; exit 1; \
	else \
		echo "warning: npm is not installed; the socket.io-client suites will be skipped" >&2; \
	fi

clean:
	rm -rf bin

# make bench: web3-socket against the official Node Socket.IO 4 server
# (test/bench/node), one report with the ratios: broadcast, per-user,
# per-user-batch and idle on one instance of each, then the Redis variant
# (when redis-server is on PATH): redis-broadcast, redis-per-user,
# redis-per-user-batch on two instances of each sharing a fresh redis-server
# (BUS=redis; Node with @socket.io/redis-streams-adapter), and redis-bus (how
# fast each web3-socket instance consumes the stream), then the Kafka variant
# on web3-socket only (no Node Kafka adapter): kafka-broadcast,
# kafka-per-user, kafka-per-user-batch, kafka-bus on two instances with
# BUS=kafka, against KAFKA_BROKERS when set, else a broker .ci/kafka.sh
# starts (needs java; left out without either). Flags for the
# generator go in BENCH_FLAGS, e.g. make bench BENCH_FLAGS=-quick:
#   -quick                smoke sizes (200 clients, 50 broadcasts, 2,000 messages, 1,000 idle)
#   -servers web3,node    which servers;  -scenarios broadcast,per-user,idle  which scenarios
#   -scenarios redis-broadcast,redis-per-user,redis-per-user-batch,redis-bus  only the Redis variant
#   -servers web3 -scenarios kafka-broadcast,kafka-per-user,kafka-per-user-batch,kafka-bus  only the Kafka variant
#   -bus-messages N       entries of redis-bus and kafka-bus;  -redis-server PATH;  -kafka-brokers H:P;  -java PATH
#   -broadcast-clients N -broadcasts N -user-clients N -user-messages N -idle-clients N
#   -idle-settle 30s      idle time before memory is read
#   -workers 8            concurrent HTTP publishers;  -batch N  N messages per /api/batch (0: one per call)
#   -rate R               messages/s (0: as fast as answered);  -connect-concurrency 100
#   -timeout 120s         per scenario and server;  -stall 15s;  -out FILE  also write the report
# `go run ./test/bench -h` lists them all.
BENCH_DIR   := test/bench/node
BENCH_FLAGS ?=

.PHONY: bench
bench: ## web3-socket vs Node Socket.IO 4: deliveries/s, latency, KiB/conn, CPU
	@# npm writes node_modules/.package-lock.json: older than the lockfile
	@# means packages were added (such as the Redis adapter) since.
	@if [ ! -f $(BENCH_DIR)/node_modules/.package-lock.json ] || \
		[ $(BENCH_DIR)/node_modules/.package-lock.json -ot $(BENCH_DIR)/package-lock.json ]; then \
		echo "cd $(BENCH_DIR) && $(NPM) ci --no-audit --no-fund"; \
		cd $(BENCH_DIR) && $(NPM) ci --no-audit --no-fund; \
	fi
	$(GO) run ./test/bench $(BENCH_FLAGS)
