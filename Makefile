# The two commands of the README. Both create .venv on a fresh machine with only Python 3.11 + pip.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BUDGET ?= 150GFLOPs

.PHONY: setup search test lint clean

$(BIN)/nas: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: on the dev machines this is the CPU build already on disk
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test,onnx]"
	touch $(BIN)/nas

# the real YOLOv7/YOLOv9 model parsers the export tests check against (PyPI packages of the two
# repositories), beside .venv's packages, never in them: --no-deps keeps torchvision and another torch out
$(VENV)/yolo-repos: $(BIN)/nas
	$(BIN)/pip install -q --no-deps --target $(VENV)/yolo-repos "yolov7detect==1.0.1" "yolov9pip==0.0.4"

setup: $(BIN)/nas $(VENV)/yolo-repos

search: setup
	$(BIN)/nas search --budget $(BUDGET)

test: setup
	$(BIN)/ruff format --check nas search_spaces evaluators tests benchmarks
	$(BIN)/ruff check nas search_spaces evaluators tests benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff format nas search_spaces evaluators tests benchmarks
	$(BIN)/ruff check --fix nas search_spaces evaluators tests benchmarks

clean:
	rm -rf $(VENV) runs/bench runs/train
