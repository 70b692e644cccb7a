# The two commands of the README: each installs what is missing, then runs.
VENV    ?= .venv
HWBENCH := $(VENV)/bin/hwbench
DEMO    := out/demo

.PHONY: setup demo test clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(HWBENCH) boards
	$(HWBENCH) generate --count 8 --seed 1 --out $(DEMO) --jobs 2
	$(HWBENCH) analyze $(DEMO)/model_0000.tflite --board mps2-an386 --plot $(DEMO)/model_0000-memory.png

test: setup
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf out build
