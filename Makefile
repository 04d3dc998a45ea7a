# The two commands of the README:
#   make demo   set up a virtual environment and run the main job (woodseg demo) on the embedded benchmark
#               (make demo-full: also pseudo masks and a segmentation network, woodseg demo --full)
#   make test   set up, install the browser the review-app test drives, and run the whole test suite
# Works on a fresh Debian/Ubuntu machine with Python 3.11; the browser step needs root (apt-get).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2 --durations=15

.PHONY: setup demo demo-full test browser lint bench clean verify-weights

setup: $(VENV)/.installed

# constraints.txt pins every package to the versions our machines and CI run (pyproject.toml only declares
# compatible ranges). torch and torchvision go first, at their pinned versions: pip then finds them installed
# instead of pulling another multi-GB build (see docs/install.md). The test extra builds pydensecrf2 from
# source (~50 s) and installs pycocotools.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

demo: setup
	$(BIN)/woodseg demo

demo-full: setup
	$(BIN)/woodseg demo --full

# Rebuild the shipped corpus-resnet10 weights from scratch (~20 min on 2 cores, generates the corpus once) and
# check the file's sha256 equals the shipped one: the weights are what `woodseg pretrain` makes.
verify-weights: setup
	WOODSEG_VERIFY_WEIGHTS=1 $(BIN)/pytest -q -p no:xdist tests/models/test_shipped.py

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: setup browser
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
