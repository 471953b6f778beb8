# zlnotes: build the book, test it, re-execute its chapters.
#
#   make book        HTML from the committed chapter outputs (no execution) -> _build/html
#   make test        unit tests, nbval, committed-output check, papermill runs, book build,
#                    the built pages in headless Chromium (skipped without Chromium)
#   make notebooks   re-execute chapters in place (all, or CHAPTERS="1 3")
#   make clean       remove _build/ and runs/
#
# Every target first makes sure .venv exists and holds requirements.txt and zlnotes
# (editable); that step reruns only when requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS ?=

# ipykernel draws figures into the notebook (inline backend) only when MPLBACKEND is
# unset; a value such as Agg in the caller's shell would silently drop every figure.
unexport MPLBACKEND

.PHONY: book test notebooks clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "zlnotes needs Python >= 3.11; set PYTHON=python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet -e . -c constraints.txt
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo "$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/pytest tests/unit
	$(BIN)/pytest --nbval chapters/ -n 2 --dist loadfile
	$(BIN)/pytest tests/notebooks/test_committed.py
	$(BIN)/pytest tests/notebooks/test_papermill.py -n 2
	@$(MAKE) --no-print-directory book
	$(BIN)/pytest tests/browser -rs

notebooks: $(STAMP)
	$(BIN)/zlnotes notebooks $(CHAPTERS)

clean:
	rm -rf _build runs
