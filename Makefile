# NeuronLens developer commands. `make demo` and `make test` work on a fresh clone.
#
# Every install goes through requirements.lock, the pinned versions of every transitive dependency of
# every extra (made by `make lock` with uv from pyproject.toml; tests/test_lock.py fails when the two
# disagree): a new release of any dependency cannot change what a fresh clone installs.
#
# torch is installed first and pinned (torch==2.13.0): an unpinned torch requirement would pull several GB
# of CUDA packages; with the pin satisfied, `pip install -e '.[worker,dev]'` leaves it alone.
# On Linux the public index's torch==2.13.0 is the CUDA build (~20 nvidia packages, several GB); on a
# machine without a GPU pass PyTorch's CPU wheel index (torch alone comes from it; its dependencies come
# from the default index at their locked versions):
#   make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.neuronlens-installed
TORCH_PIN := torch==2.13.0
PIP_PIN := pip==26.3
LOCK := requirements.lock
TORCH_INDEX_URL ?=
PIP_QUIET := -q --disable-pip-version-check
# pytest processes for `make test` (pytest-xdist; whole files per process, so module fixtures are built once)
PYTEST_WORKERS ?= 2
# The documentation site (mkdocs.yml, docs/), built here; ignored by git.
DOCS_SITE := site

.PHONY: install lock demo test lint format bench openapi docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) $(PIP_PIN)

# Re-install only when the package metadata or the lock changes (the stamp is newer than both otherwise).
# From a TORCH_INDEX_URL torch alone is taken (--no-deps); the second install adds its dependencies.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install $(PIP_QUIET) -c $(LOCK) \
		$(if $(TORCH_INDEX_URL),--no-deps --index-url $(TORCH_INDEX_URL)) $(TORCH_PIN)
	$(BIN)/pip install $(PIP_QUIET) -c $(LOCK) --build-constraint $(LOCK) -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

# Re-resolve requirements.lock after a change to pyproject.toml's dependencies: versions already locked
# stay where they still fit. `make lock UPGRADE=1` moves every package to its newest allowed release.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
		--custom-compile-command 'make lock' --quiet $(if $(UPGRADE),--upgrade) -o $(LOCK)

demo: $(STAMP)
	$(BIN)/neuronlens demo

# pytest's own exit codes fail the recipe, 5 ("no tests collected") included: nothing here masks them.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy service workers neuronlens
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(DOCS_SITE)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service workers neuronlens
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/run.py

openapi: $(STAMP)
	$(BIN)/python -m service.http.openapi

# --strict: a broken link or anchor, or a page left out of the navigation, fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)
	@echo "open $(DOCS_SITE)/index.html"

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8001

clean:
	rm -rf $(VENV) $(DOCS_SITE) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
