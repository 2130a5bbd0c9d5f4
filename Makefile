# cachekit: `make run` builds and starts Redis with the module; `make test`
# runs the unit tests and the integration tests against Redis 7.0 and Valkey 8,
# then the Python package's tests against both, in a virtualenv under target/.

PORT ?= 6379
MODULE := target/release/libcachekit.so
CARGO ?= cargo

PYENV := target/pyenv
PYBIN := $(CURDIR)/$(PYENV)/bin


.PHONY: all build deps deps-run pyenv run test test-python test-memcheck lint bench bench-python bench-instructions fuzz clean

all: build

# Everything the tests need (both servers, Python); deps-run: only what
# building and `make run` need.
deps:
	@scripts/install-deps.sh

deps-run:
	@scripts/install-deps.sh --run

build: deps-run
	$(CARGO) build --release

$(MODULE): build

run: build
	@mkdir -p target/run
	redis-server redis.conf --port $(PORT) --dir $(CURDIR)/target/run --loadmodule $(CURDIR)/$(MODULE)

# The Python package (python/) in a virtualenv, with its test and lint tools,
# all from the package index; redone when pyproject.toml changes.
$(PYENV)/.installed: python/pyproject.toml
	python3 -m venv $(PYENV)
	$(PYBIN)/pip install --quiet --disable-pip-version-check -e 'python[test]'
	touch $@

pyenv: deps $(PYENV)/.installed

test: deps build pyenv
	$(CARGO) test --release -- --test-threads=2
	$(MAKE) --no-print-directory test-python

test-python: build pyenv
	cd python && $(PYBIN)/pytest -q

# The pure-logic unit tests (parsers, canonical JSON, limiter state) under
# Valgrind's memcheck: any invalid read/write or definite leak fails. Takes a
# few minutes; not part of `make test`.
MEMCHECK_CASES ?= 64
test-memcheck:
	@command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)"; exit 1; }
	$(CARGO) test --release --lib --no-run
	bin=$$($(CARGO) test --release --lib --no-run 2>&1 | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))/\1/p'); \
	test -x "$$bin" || { echo "unit test binary not found"; exit 1; }; \
	PROPTEST_CASES=$(MEMCHECK_CASES) valgrind --quiet --error-exitcode=1 --leak-check=full \
		--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		"$$bin" --test-threads=2

# Longer fuzzing than `make test` does: the property tests of every pure
# parser/encoder with many more cases, and the random-command fuzzer against
# both servers with more commands and a fresh seed (printed, to replay a
# failure with CACHEKIT_FUZZ_SEED=<seed>).
FUZZ_CASES ?= 200000
FUZZ_COMMANDS ?= 1000000
FUZZ_SECONDS ?= 600
fuzz: build
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --lib prop
	seed=$${CACHEKIT_FUZZ_SEED:-$$(date +%s)}; echo "fuzz seed $$seed"; \
	CACHEKIT_FUZZ_SEED=$$seed CACHEKIT_FUZZ_COMMANDS=$(FUZZ_COMMANDS) CACHEKIT_FUZZ_SECONDS=$(FUZZ_SECONDS) \
		$(CARGO) test --release --test fuzz_commands -- --nocapture

lint: pyenv
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	cd python && $(PYBIN)/ruff check . && $(PYBIN)/ruff format --check . && $(PYBIN)/mypy --strict

bench: build
	scripts/bench.sh

# The Python tier against round trips, and a bot-like workload with and
# without it and the original services' way (about 40 s).
bench-python: build pyenv
	cd python && $(PYBIN)/python bench/bench_python.py

# Instructions and memory reads per request under callgrind: figures that
# hardly move with the load on the machine (needs valgrind; about a minute).
bench-instructions: build
	@command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)"; exit 1; }
	scripts/bench-instructions.sh

clean:
	$(CARGO) clean
