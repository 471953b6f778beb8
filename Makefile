# zlnotes: build the book, test it, re-execute its chapters.
#
#   make book        HTML from the committed chapter outputs (no execution) -> _build/html
#   make test        ruff, mypy, unit tests, docstring examples, nbval, committed-output and reading checks, papermill runs
#                    (nbval and papermill twice: as numpy is, and with its widest SIMD loops off),
#                    book build, the built pages in headless Chromium (skipped without Chromium)
#   make notebooks   re-execute chapters in place (all, or CHAPTERS="1 3")
#   make bench       zlnotes kernels against torch.func, JAX and neural-tangents
#                    -> benchmarks/results/results.{json,md} (BENCH_THREADS=1, BENCH_ARGS=...)
#   make clean       remove _build/ and runs/
#
# `make bench` uses two environments of its own, built on first use: benchmarks/.venv
# (torch CPU, JAX) and benchmarks/.venv-nt (neural-tangents with the older JAX it needs).
# Every other target first makes sure .venv exists and holds requirements.txt and zlnotes
# (editable); that step reruns only when requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS ?=

# ipykernel draws figures into the notebook (inline backend) only when MPLBACKEND is
# unset; a value such as Agg in the caller's shell would silently drop every figure.
unexport MPLBACKEND

.PHONY: book test notebooks bench clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "zlnotes needs Python >= 3.11; set PYTHON=python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet -e '.[book]' -c constraints.txt
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo "$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check zlnotes tests
	$(BIN)/mypy zlnotes tests
	$(BIN)/pytest tests/unit --doctest-modules zlnotes
	$(BIN)/pytest --nbval chapters/ -n 2 --dist loadfile
	$(BIN)/pytest tests/notebooks/test_committed.py tests/notebooks/test_reading.py
	$(BIN)/pytest tests/notebooks/test_papermill.py -n 2
	@# Again with numpy's widest SIMD loops turned off: the committed outputs must not depend on
	@# the last bits those loops change between CPUs (tests/narrow_simd.py says which).
	@narrow="$$($(BIN)/python tests/narrow_simd.py)"; \
	if [ -z "$$narrow" ]; then echo "numpy dispatches no SIMD loop above its baseline here: nothing to narrow"; \
	else echo "nbval and papermill again with NPY_DISABLE_CPU_FEATURES=\"$$narrow\""; \
		NPY_DISABLE_CPU_FEATURES="$$narrow" $(BIN)/pytest --nbval chapters/ -n 2 --dist loadfile \
		&& NPY_DISABLE_CPU_FEATURES="$$narrow" $(BIN)/pytest tests/notebooks/test_papermill.py -n 2; fi
	@$(MAKE) --no-print-directory book
	$(BIN)/pytest tests/browser -rs

notebooks: $(STAMP)
	$(BIN)/zlnotes notebooks $(CHAPTERS)

BENCH_VENV := benchmarks/.venv
BENCH_NT_VENV := benchmarks/.venv-nt
BENCH_THREADS ?= 1
BENCH_ARGS ?=

# torch first, pinned, so that pip takes the CPU build on this machine's disk and nothing
# later can pull a CUDA build; then the rest with the pins as constraints; then zlnotes.
$(BENCH_VENV)/.installed: benchmarks/requirements.txt pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet "$$(grep '^torch==' benchmarks/requirements.txt)"
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements.txt -c benchmarks/requirements.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(BENCH_NT_VENV)/.installed: benchmarks/requirements-nt.txt pyproject.toml
	test -x $(BENCH_NT_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_NT_VENV)
	$(BENCH_NT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_NT_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-nt.txt -c benchmarks/requirements-nt.txt
	$(BENCH_NT_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

# Prints the tables; a run during which other processes used > 0.1 core is marked provisional.
bench: $(BENCH_VENV)/.installed $(BENCH_NT_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench.py --threads $(BENCH_THREADS) \
		--nt-python $(BENCH_NT_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf _build runs
