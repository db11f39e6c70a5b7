# One-command set-up: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data/synthetic
RUN    ?= runs
# make test runs its test files on this many processes (pytest-xdist; 1: in this process).
# Most of the suite is fresh entry-point processes and tiny training steps, which keep one
# core busy each: 2 workers take the suite from 21 to 12 minutes on 2 cores.
TEST_WORKERS ?= 2

export PYTHONUNBUFFERED = 1

.PHONY: install test test-fast test-tfio docs lint demo demo-mri demo-microscopy demo-deblur2d bench clean

$(STAMP): setup.cfg setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,onnx,bioimageio,omezarr,docs]'
	@touch $(STAMP)

# The optional tensorflow-io lane: its own venv on the newest TensorFlow tensorflow-io supports.
TFIO_VENV  ?= .venv-tfio
TFIO_STAMP := $(TFIO_VENV)/.installed-stamp
TFIO_TESTS := tests/test_tensorflow_io.py tests/test_uris.py tests/data/test_fastmri.py

$(TFIO_STAMP): setup.cfg setup.py
	@test -x $(TFIO_VENV)/bin/python || $(PYTHON) -m venv $(TFIO_VENV)
	$(TFIO_VENV)/bin/python -m pip install --upgrade pip
	$(TFIO_VENV)/bin/python -m pip install -e '.[test,tfio]'
	@touch $(TFIO_STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check tf_otcycle train tests benchmarks
	$(BIN)/python -m pytest -q --durations=15 $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) tests

# The working loop: unit and in-process tests (not marked slow), under a minute on 2 cores.
test-fast: $(STAMP)
	$(BIN)/ruff check tf_otcycle train tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow" tests

test-tfio: $(TFIO_STAMP)
	TF_OTCYCLE_REQUIRE_TFIO=1 $(TFIO_VENV)/bin/python -m pytest -q $(TFIO_TESTS)

# The documentation site (MkDocs + mkdocstrings) into build/site, warnings as errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check tf_otcycle train tests benchmarks

demo: demo-mri

demo-mri: $(STAMP)
	$(BIN)/python -m tf_otcycle.data.synthetic mri --out $(DATA)/mri
	$(BIN)/python train/mri.py --flagfile=train/configs/mri_demo.flags --run_dir=$(RUN)/mri_demo

demo-microscopy: $(STAMP)
	$(BIN)/python -m tf_otcycle.data.synthetic microscopy --out $(DATA)/microscopy
	$(BIN)/python train/microscopy.py --flagfile=train/configs/microscopy_demo.flags --run_dir=$(RUN)/microscopy_demo

demo-deblur2d: $(STAMP)
	$(BIN)/python -m tf_otcycle.data.synthetic deblur2d --out $(DATA)/deblur2d
	$(BIN)/python train/deblur2d.py --flagfile=train/configs/deblur2d_demo.flags --run_dir=$(RUN)/deblur2d_demo

bench: $(STAMP)
	$(BIN)/python benchmarks/psf_conv.py
	$(BIN)/python benchmarks/input_pipelines.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(RUN) $(DATA)
