# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit install clean ipdb system-deps evaluation bench

# Debian packages some tests drive for real: headless Chromium renders the HTML report, nft and
# ipset (in a network namespace made with iproute2) validate the blocklist exports, nfdump
# converts nfcapd files. Installed when missing and we are root with apt; otherwise those tests
# skip and say why.
SYSTEM_PACKAGES := chromium nftables ipset iproute2 nfdump

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/orbwatch demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck: $(STAMP)
	$(BIN)/mypy

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing system packages:$$missing (the tests that need them skip)"; fi; \
	fi

unit: $(STAMP) system-deps
	$(BIN)/pytest -q

test: lint typecheck unit

# Regenerate docs/evaluation.md: the simulator at three scales and two seeds, scored.
evaluation: $(STAMP)
	$(BIN)/python -m orbwatch.evaluate.matrix --out docs/evaluation.md

# Every benchmark at 1x, 4x and 16x of its base size, against its yardstick: one table, and
# bench/results.json to diff with a later run (docs/performance.md). 10-15 minutes on 2 cores;
# the yardstick of flow decoding is the `bench` extra, that of enrichment comes from `make ipdb`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run_all.py

# Rebuild the bundled IP database from the pinned npm packages (needs npm; tarballs are cached
# in $$XDG_CACHE_HOME/orbwatch-ipdb, never in the repository). See scripts/build_ipdb.py.
ipdb: $(STAMP)
	$(BIN)/python scripts/build_ipdb.py --fetch-yardstick

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
