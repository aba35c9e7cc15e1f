# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.condense-installed

.PHONY: demo test docs install clean

# Re-install only when the packaging changes (the install is editable): the stamp
# records the extras installed, so a stamp from an install of fewer extras is redone.
EXTRAS := all,test
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	echo '$(EXTRAS)' > $(STAMP)

# An existing stamp without this extras list (an older Makefile's) is out of date.
ifneq ($(shell cat $(STAMP) 2>/dev/null),$(EXTRAS))
.PHONY: $(STAMP)
endif

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/condense demo

test: $(STAMP)
	$(PY) -m pytest -q

# The documentation site in site/; --strict turns every warning (a broken link, a missing docstring target) into a failure.
DOCS_STAMP := $(VENV)/.condense-docs-installed
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist site *.egg-info
