# make run: set everything up and serve.  make test: the whole suite.
PYTHON ?= python3
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
	touch $@

protos: $(GENERATED)

$(GENERATED): protos/ai_router.proto $(INSTALLED)
	$(PY) -m grpc_tools.protoc -Iai_router/_generated=protos \
		--python_out=. --grpc_python_out=. --pyi_out=. protos/ai_router.proto

run: install
	$(VENV)/bin/ai-router serve

test: typecheck
	$(PY) -m pytest -q

typecheck: install
	$(PY) -m mypy

clean:
	rm -rf $(VENV) ai_router/_generated/*_pb2*.py* *.egg-info .pytest_cache .mypy_cache
