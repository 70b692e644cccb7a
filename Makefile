# The two commands of the README: each installs what is missing, then runs.
VENV    ?= .venv
HWBENCH := $(VENV)/bin/hwbench
DEMO    := out/demo

.PHONY: setup demo test clean

setup:
	@bash scripts/setup.sh

# The whole loop on the emulated board: collect, fit its latency model, search with it, verify the
# Pareto models on the board, summarise. Run again, every step resumes (nothing is measured twice).
demo: setup
	$(HWBENCH) boards
	$(HWBENCH) collect --board mps2-an386 --count 150 --seed 1 --db $(DEMO)/results.db --jobs 2
	$(HWBENCH) results --db $(DEMO)/results.db
	$(HWBENCH) analyze $(DEMO)/models-seed1/model_0000.tflite --board mps2-an386 --plot $(DEMO)/model_0000-memory.png
	$(HWBENCH) fit --db $(DEMO)/results.db --board mps2-an386 --out $(DEMO)/mps2-an386.latmodel --plot $(DEMO)/fit.png
	$(HWBENCH) search --board mps2-an386 --dataset digits --latency-model $(DEMO)/mps2-an386.latmodel \
	    --max-peak 1024 --max-latency-ms 5 --rounds 24 --epochs 8 --population 8 --sample 3 --workers 2 \
	    --out $(DEMO)/search --resume --verify-board mps2-an386 --db $(DEMO)/results.db --json > $(DEMO)/search.json
	$(VENV)/bin/python scripts/demo_summary.py $(DEMO)

test: setup
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf out build
