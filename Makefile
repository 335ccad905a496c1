# meshfit — every entry point a person or CI needs. A fresh machine needs only
# python3 (>= 3.11) and go; everything else comes from the registries.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all venv lint test unit e2e golden run demo controlplane tools image prometheus bench certs manifests mutation speed pure clean

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,lint,mutation]'
	@touch $(STAMP)

venv: $(STAMP)

## make lint: the layers (import-linter contracts in pyproject.toml) and the types (mypy).
lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## make test: the checks, then the whole suite, end-to-end tests on a real control plane included.
test: venv lint controlplane tools image prometheus
	$(PY) -m pytest $(PYTEST_ARGS)

## make prometheus: promtool, which the suite runs on manifests/monitoring/, and the Prometheus server the
## rollout end-to-end tests judge batches with (both from Debian's prometheus package).
## Quick when both are there; the package's service is never started (policy-rc.d refuses it).
prometheus:
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || bash hack/install-promtool.sh

## make unit: everything but the end-to-end tests (no control plane needed).
unit: venv
	$(PY) -m pytest -m 'not e2e' $(PYTEST_ARGS)

## make golden: regenerate tests/golden/*.out.yaml from the engine's output and show what changed.
golden: venv
	$(PY) -m tests.golden --update

## make controlplane: build etcd, kube-apiserver and kube-scheduler from their Go modules (cached).
controlplane:
	@bash hack/controlplane/build.sh
	@bash hack/kwok/build.sh  # KWOK's kwok controller, the fake kubelet of the e2e tests

## make tools: build helm and crane from their Go modules (hack/tools, cached).
tools:
	@bash hack/tools/build.sh >/dev/null

## make image: the OCI image under build/image/ (layout, docker-load tarball, digest); no daemon, no base image.
image: venv
	@$(PY) hack/image/build.py

## make demo: a local control plane, the webhook and the extender, sample pods, and what happened to them.
demo: venv controlplane
	$(VENV)/bin/meshfit demo

## make run: the webhook on loopback with dev certificates and the default policy.
run: venv
	bash hack/run-webhook.sh

## make e2e: only the end-to-end tests (real etcd + kube-apiserver + kube-scheduler).
e2e: venv controlplane tools image prometheus
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

## make manifests: render the webhook's certificate and caBundle for `kubectl apply -k manifests/`.
manifests: venv
	bash hack/render-cabundle.sh

## make bench: every benchmark; figures as tables and JSON under bench/results/.
bench: venv controlplane
	$(PY) -m bench.run_all

## make speed: the injection engine's hot modules compiled with mypyc beside their sources (optional:
## about 1.6x faster, the same output; the tests run against whichever is there and say which).
speed: venv
	$(PY) hack/speed/build.py

## make pure: remove what make speed compiled; the Python modules are imported again.
pure:
	$(PYTHON) hack/speed/build.py --remove

## make mutation: mutmut over policy/ and the servers' input comparisons; the score and every survivor.
mutation: venv
	bash hack/mutation.sh

clean: pure
	rm -rf $(VENV) .pytest_cache
