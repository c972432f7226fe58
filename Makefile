# make run: set everything up and serve.  make test: the whole suite.
# The interpreter the venv is made from. How CPython was compiled shows in the router's speed:
# one built with profile-guided and link-time optimisation, as the Docker image's python:3.11-slim
# and Debian's python3.11 are, spends about 8% less CPU per request than a plain build such as
# pyenv's default (README, Performance). So Debian's is taken where it is installed and can make
# a venv, else python3; `make PYTHON=...` picks another. After a change of interpreter,
# `make clean` first: an existing venv is kept.
# Looked for only when the venv is made (a recursive variable), not on every `make`.
PYTHON ?= $(or $(shell /usr/bin/python3.11 -c 'import ensurepip' >/dev/null 2>&1 && echo /usr/bin/python3.11),python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GENERATED := ai_router/_generated/ai_router_pb2.py

.PHONY: install protos run test typecheck clean

install: $(INSTALLED) $(GENERATED)

# Re-run only when the package's metadata changes; `make install` is then a no-op.
$(INSTALLED): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.[dev]'
	# instructor (a third-party client the tests drive) pins jiter<0.15, which the openai SDK
	# (jiter>=0.16) excludes; it runs on the newer jiter, so it goes in without its pins.
	$(PY) -m pip install --quiet --no-deps 'instructor==1.17.0'
	touch $@

protos: $(GENERATED)

$(GENERATED): protos/ai_router.proto $(INSTALLED)
	$(PY) -m grpc_tools.protoc -Iai_router/_generated=protos \
		--python_out=. --grpc_python_out=. --pyi_out=. protos/ai_router.proto

run: install
	$(VENV)/bin/ai-router serve

# The tests drive real nginx (the deployment proof) and redis-server (limits shared across
# replicas); Debian packages, installed when missing (needs root, as on CI). The tests start
# their own on free ports.
TEST_SERVERS = { { command -v nginx || [ -x /usr/sbin/nginx ]; } && command -v redis-server; } \
	>/dev/null 2>&1 || { apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx redis-server >/dev/null; }

# One pytest process per core; a test file's tests stay together in one of them (the servers a
# file's fixtures start are its own). `make test TEST_PROCESSES=0` runs them in this process.
TEST_PROCESSES ?= 2

test: typecheck
	@$(TEST_SERVERS)
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

typecheck: install
	$(PY) -m mypy

clean:
	rm -rf $(VENV) ai_router/_generated/*_pb2*.py* *.egg-info .pytest_cache .mypy_cache

# make bench: what the router adds over a direct call and over nginx, every surface, in about a
# minute (scripts/bench/run.py); make bench-full: longer runs, a finer knee sweep. Both install
# wrk and nginx first when missing (Debian packages; needs root, as on CI).
BENCH_TOOLS = { command -v wrk && { command -v nginx || [ -x /usr/sbin/nginx ]; }; } >/dev/null 2>&1 || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null; }

.PHONY: bench bench-full
bench: install
	@$(BENCH_TOOLS)
	$(PY) scripts/bench/run.py

bench-full: install
	@$(BENCH_TOOLS)
	$(PY) scripts/bench/run.py --full

# make bench-worker: CPU and p50 overhead per request inside the gunicorn worker, the router's
# beside the bare Flask relay's and the gateway floor's (the least bookkeeping a gateway does), in
# about a minute and a half; BENCH_WORKER_ARGS adds variants of the router's environment
# (e.g. --variant quiet-log:LOG_LEVEL=warning) or another commit's router beside this one's
# (--baseline HEAD~1, from a git worktree). scripts/bench/worker_cpu.py.
BENCH_WORKER_ARGS ?= --variant quiet-log:LOG_LEVEL=warning

.PHONY: bench-worker
bench-worker: install
	@$(BENCH_TOOLS)
	$(PY) scripts/bench/worker_cpu.py $(BENCH_WORKER_ARGS)

# make bench-grpc-unary: the gRPC unary call's CPU and overhead, the router's beside the bare
# grpcio relay's, one call at a time, in about a minute; BENCH_GRPC_UNARY_ARGS as for bench-worker
# (variants, --baseline COMMIT). scripts/bench/grpc_unary_cpu.py.
BENCH_GRPC_UNARY_ARGS ?= --variant quiet-log:LOG_LEVEL=warning

.PHONY: bench-grpc-unary
bench-grpc-unary: install
	$(PY) scripts/bench/grpc_unary_cpu.py $(BENCH_GRPC_UNARY_ARGS)

# make bench-grpc-streams: 2,000 streams held by one `ai-router grpc` process against a slow
# upstream, RSS per stream, threads, refusals at and below the limit (scripts/bench/grpc_streams.py).
.PHONY: bench-grpc-streams
bench-grpc-streams: install
	$(PY) scripts/bench/grpc_streams.py

# make bench-peers: the router beside LiteLLM's proxy and Portkey's gateway, nginx and the bare
# Flask relay in one run, then its tail latency at a fixed rate (scripts/bench/peers.py). The peers
# are installed once, pinned, under ~/.cache/ai-router-bench ($BENCH_CACHE); Node.js and npm are
# Debian's, installed when missing (needs root, as on CI).
PEER_TOOLS = { command -v node && command -v npm; } >/dev/null 2>&1 || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

.PHONY: bench-peers
bench-peers: install
	@$(BENCH_TOOLS)
	@$(PEER_TOOLS)
	$(PY) scripts/bench/peers.py
