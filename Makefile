# meshfit — every entry point a person or CI needs. A fresh machine needs only
# python3 (>= 3.11) and go; everything else comes from the registries.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all venv test unit e2e run demo controlplane bench certs manifests clean

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

venv: $(STAMP)

## make test: the whole suite, end-to-end tests on a real control plane included.
test: venv controlplane
	$(PY) -m pytest $(PYTEST_ARGS)

## make unit: everything but the end-to-end tests (no control plane needed).
unit: venv
	$(PY) -m pytest -m 'not e2e' $(PYTEST_ARGS)

## make controlplane: build etcd, kube-apiserver and kube-scheduler from their Go modules (cached).
controlplane:
	@bash hack/controlplane/build.sh

## make run: the webhook on loopback with dev certificates and the default policy.
run: venv
	$(VENV)/bin/meshfit inject -f manifests/examples/ --policy manifests/policy.yaml

clean:
	rm -rf $(VENV) .pytest_cache
