# Each target installs what it needs first, on a fresh Debian 12 machine as root.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-slow lint deps sysdeps venv clean bench profile demo constraints

sysdeps:
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then \
	  echo "installing mariadb-server mariadb-client (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    mariadb-server mariadb-client >/dev/null; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

deps: sysdeps venv

test: deps
	$(PY) -m pytest -m "not slow" -q

test-slow: deps
	$(PY) -m pytest -m slow -q

# the whole story on a throwaway MariaDB and an in-process moto: no AWS account needed
demo: deps
	$(VENV)/bin/dbroll demo $(DEMO_ARGS)

bench: deps
	bash bench/run.sh

# where dbroll's wall-clock time goes (py-spy), the section of `make bench` alone
profile: deps
	bash bench/run.sh --profile

lint: venv
	$(VENV)/bin/ruff check pipeline tests
	$(VENV)/bin/ruff format --check pipeline tests

# the newest releases pyproject.toml allows, into constraints.txt: then run `make test`
constraints:
	rm -rf .venv-constraints && python3 -m venv .venv-constraints
	.venv-constraints/bin/pip install -q -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-constraints/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-constraints

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
