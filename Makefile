# The two commands of the README. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: quickstart test lint browser

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/autotuner run examples/quickstart.yaml

# Headless Chromium for the browser tests, from Debian's packages (never a browser download).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check tuner twin service api ui webapp tests benchmarks
	$(VENV)/bin/mypy tuner twin service api ui webapp

test: lint browser
	$(VENV)/bin/python -m pytest -q -ra --durations=15
