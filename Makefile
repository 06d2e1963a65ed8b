# Two commands do everything (README.md): `make synth` and `make test`.
# Both set up what they need first: .venv (CDK app, runtime, test tools), .venv-checkov, and
# node_modules (the pinned CDK CLI and Node 22).
SHELL := /bin/bash
PY := .venv/bin/python
# Node 22 from node_modules first: jsii and the CDK CLI run on it, not on the machine's Node.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup synth test bench clean redis-server chromium

setup: .venv/.installed .venv-checkov/.installed node_modules/.installed redis-server chromium

# The Redis session store and container tests run against a real redis-server (Debian package).
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q redis-server || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q redis-server; }; }

# The web UI's browser tests: Debian's Chromium and its chromedriver (one package version, so the
# two never drift apart; no test tool downloads a browser).
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q chromium chromium-driver || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; }

.venv/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.venv-checkov/.installed: requirements-checkov.txt
	test -x .venv-checkov/bin/python || python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Every environment's stacks (config/*.yaml) into one cloud assembly: cdk.out/; and every
# environment's Kubernetes and Cloud Run manifests into k8s/dist/<env>/ (committed).
synth: setup
	npx cdk synth --quiet -c env=all
	$(PY) -m k8s.main

# One pytest worker per core (pytest-xdist); tests/conftest.py keeps the tests that share the
# session's CDK synthesis (or its cdk8s synthesis) on one worker, so each runs once.
test: setup
	$(PY) -m pytest -n auto --dist loadgroup

# Every benchmark, then the table of issue 8's targets (README "Performance"); about 30 minutes.
bench: setup synth
	$(PY) bench/run_all.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
