# kappa-migration: the two commands are `make demo` and `make test`; both bootstrap first.
SHELL := /bin/bash
PY := .venv/bin/python
KAPPACTL := .venv/bin/kappactl
CONFIG ?= config/demo.yaml
DURATION ?= 240
KAPPA_RUNNER ?=
PYTEST_ARGS ?=

.PHONY: setup up down status demo demo-cloud test test-fast fuzz bench lint docs clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## install venvs, jars, the emulator (idempotent)
	@tools/setup.sh

up: setup  ## start Kafka and the Pub/Sub emulator on 127.0.0.1
	$(KAPPACTL) up --config $(CONFIG)

down:  ## stop what `up` started
	$(KAPPACTL) down --config $(CONFIG)

status:  ## health of the local stack
	$(KAPPACTL) status --config $(CONFIG)

demo: setup  ## the whole dual run, end to end (DURATION seconds of traffic; the Kappa stream on Flink, KAPPA_RUNNER=direct for the DirectRunner)
	$(KAPPACTL) demo --config $(CONFIG) --duration $(DURATION) $(if $(KAPPA_RUNNER),--kappa-runner $(KAPPA_RUNNER)) --report-dir reports/demo

demo-cloud: setup  ## the same dual run on the BigQuery, Cloud Storage and Pub/Sub emulators
	$(KAPPACTL) demo --config config/gcp-emulated.yaml --duration $(DURATION) --report-dir reports/demo-cloud

test: setup  ## every test: unit, Beam, Flink, real Kafka + emulator, Terraform (two runs side by side)
	@tools/test.sh $(PYTEST_ARGS)

test-fast: setup  ## tests that need no local stack and no Flink
	$(PY) -m pytest -m "not stack and not flink and not slow" $(PYTEST_ARGS)

fuzz: setup  ## the property and fuzz targets at length (FUZZ_EXAMPLES inputs each, random seeds)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m fuzz -p no:cacheprovider -s $(PYTEST_ARGS)

bench: setup  ## benchmarks -> bench/results/<date>.json and latest.md
	$(KAPPACTL) bench --config $(CONFIG)

lint: setup  ## ruff, the mypy type check and terraform fmt
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	@if command -v terraform >/dev/null; then terraform fmt -check -recursive terraform; \
	 elif [ -x .local/bin/tofu ]; then .local/bin/tofu fmt -check -recursive terraform; fi

docs: setup  ## the documentation site (mkdocs --strict: a broken link fails) -> .local/site
	.venv/bin/mkdocs build --strict --site-dir .local/site

clean:  ## remove local state (stack data, archive, warehouse, reports); keeps venvs and jars
	-$(KAPPACTL) down --config $(CONFIG)
	rm -rf .local/kafka .local/logs .local/run .local/archive .local/warehouse .local/cutover .local/gcp reports
