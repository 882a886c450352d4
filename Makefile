# The two commands of the README: `make demo` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# OGC's black-box Features verifier pins old httpx/pyarrow/pytest: it gets its own venv.
OGCTESTS := .venv-ogctests/.installed-stamp
# The web pages' npm packages and offline pygeoapi templates (api/web.py).
WEB      := var/web/.built

.PHONY: demo test install sysdeps db lint typecheck pytest stop clean

demo: install db
	$(BIN)/spatial samples build
	$(BIN)/spatial samples load
	$(BIN)/spatial serve --detach

test: install db lint typecheck pytest

install: sysdeps $(STAMP) $(OGCTESTS) $(WEB)

sysdeps:
	@scripts/sysdeps.sh

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(WEB): $(STAMP) api/web.py
	$(BIN)/python -m api.web

$(OGCTESTS):
	@test -x .venv-ogctests/bin/python || $(PYTHON) -m venv .venv-ogctests
	.venv-ogctests/bin/python -m pip install --quiet --disable-pip-version-check 'ogctests==0.1.15'
	@touch $(OGCTESTS)

db:
	$(BIN)/spatial db up
	$(BIN)/spatial db migrate

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy spatial layers tiles api

pytest:
	PYTHONFAULTHANDLER=1 $(BIN)/pytest

stop:
	-$(BIN)/spatial serve --stop
	-$(BIN)/spatial db down

clean: stop
	rm -rf $(VENV) var
