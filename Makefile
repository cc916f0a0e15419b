# The README's two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
DEMO_DIR ?= demo-output

.PHONY: install install-dev system-deps demo test lint

# Debian packages the product uses when present: ffmpeg (ffprobe), PostgreSQL (team store and its
# tests), Xvfb (screenshots). Skipped when already there or when apt-get is not available.
system-deps:
	@missing=""; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

install: system-deps
	$(PIP) install -q -e .

install-dev: system-deps
	$(PIP) install -q -e ".[dev]"

demo: install
	portrait demo --out $(DEMO_DIR)

test: install-dev
	PORTRAIT_TEST_PG_URL=$${PORTRAIT_TEST_PG_URL:-$$(.ci/postgres.sh)} QT_QPA_PLATFORM=offscreen \
	  $(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check portrait_builder annotator_gui tests benchmarks
