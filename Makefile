# The README's two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
DEMO_DIR ?= demo-output

.PHONY: install install-dev system-deps demo test lint

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

install: system-deps
	$(PIP) install -q -e .

install-dev: system-deps
	$(PIP) install -q -e ".[dev]"

demo: install
	portrait demo --out $(DEMO_DIR)

# PostgreSQL is part of the test matrix (every write path runs on both stores): a server that does
# not start is an error, not a silent skip.
test: install-dev
	@url="$${PORTRAIT_TEST_PG_URL:-$$(.ci/postgres.sh)}"; \
	if [ -z "$$url" ]; then echo "make test: could not start PostgreSQL (.ci/postgres.sh)" >&2; exit 1; fi; \
	echo "PostgreSQL for the tests: $$url"; \
	PORTRAIT_TEST_PG_URL="$$url" QT_QPA_PLATFORM=offscreen $(PYTHON) -m pytest -q $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check portrait_builder annotator_gui tests benchmarks
