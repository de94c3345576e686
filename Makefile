# Two entry points: `make demo` and `make test` (see README). Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test venv system-deps js-deps lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

system-deps:
	bash .ci/system-deps.sh

js-deps: system-deps
	bash .ci/js-deps.sh

demo: venv
	@if command -v npm >/dev/null; then bash .ci/js-deps.sh; else echo "npm not found: the 3D viewer needs CesiumJS (make js-deps)"; fi
	$(VENV)/bin/cim demo

test: venv system-deps js-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) demo-output tests/js/node_modules
