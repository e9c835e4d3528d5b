# owaction: every task is one target. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install run test lint proto bench soak image-test clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything

tests/js/node_modules: tests/js/package.json
	@if command -v npm >/dev/null; then \
	  (cd tests/js && npm install --no-audit --no-fund --silent && touch node_modules) \
	  || echo "npm install failed: the JS client test will be skipped"; \
	else echo "npm not found: the JS client test will be skipped"; fi

run: $(STAMP)  ## the whole module locally: emulator, REST :8082, gRPC :50062, worker, on SQLite
	$(BIN)/owaction run

test: $(STAMP) tests/js/node_modules  ## set up and run every test
	$(BIN)/ruff check owaction openwhisk_emulator tests bench wsgi.py grpc_server.py gunicorn.conf.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff only
	$(BIN)/ruff check owaction openwhisk_emulator tests bench wsgi.py grpc_server.py gunicorn.conf.py

proto: $(STAMP)  ## regenerate the gRPC code from proto/openwhisk_action.proto
	$(BIN)/python -m owaction.rpc.codegen

bench: $(STAMP)  ## benchmarks (about 7 minutes; PROFILE=1 adds py-spy's top functions)
	$(BIN)/python -m bench.run $(if $(PROFILE),--profile)

soak: $(STAMP)  ## a 2-minute mixed soak with faults
	$(BIN)/python -m bench.soak

image-test: $(STAMP)  ## build the image with podman and run it as the README says (minutes; root)
	OWACTION_IMAGE_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_image.py

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .ruff_cache
