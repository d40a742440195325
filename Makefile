# The two commands: `make demo` (set up, run the main job on embedded defaults) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup corpus test test-fast demo bench lint typecheck docs clean

setup:
	./scripts/setup-venv.sh

# Pillow's Tests/images from its sdist on the registry (tests/unit/test_hostile_corpus.py needs it): once, cached.
corpus: setup
	VENV=$(VENV) ./scripts/fetch-corpus.sh

test: setup corpus
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -ra

# The tests that need neither the tiny model nor the broker (markers set from fixtures in tests/conftest.py).
test-fast: setup corpus
	$(PY) -m pytest -ra -m "not engine and not broker"

demo: setup
	$(VENV)/bin/zoomguard demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

docs: setup
	$(PY) -m zoomguard.app.settings_reference

bench: setup
	$(VENV)/bin/zoomguard bench --quick --out bench-out/report.json
