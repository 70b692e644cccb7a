# The two commands of the README: each installs what is missing, then runs.
VENV    ?= .venv
HWBENCH := $(VENV)/bin/hwbench
DEMO    := out/demo

.PHONY: setup demo test clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(HWBENCH) boards
	$(HWBENCH) collect --board mps2-an386 --count 24 --seed 1 --db $(DEMO)/results.db --jobs 2
	$(HWBENCH) results --db $(DEMO)/results.db
	$(HWBENCH) analyze $(DEMO)/models-seed1/model_0000.tflite --board mps2-an386 --plot $(DEMO)/model_0000-memory.png

test: setup
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf out build
