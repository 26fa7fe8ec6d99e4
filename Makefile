# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bench bench-spark-20m clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/promo-opt demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_allocation.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/load_service.py --candidates 100000 --seconds 10 --out reports/load_service_quick.json
	nice $(BIN)/python benchmarks/observational.py
	$(BIN)/python benchmarks/ope_coverage.py --reps 200 --n 4000 --boot 300
	$(BIN)/python benchmarks/hillstrom_email.py
	nice $(BIN)/python benchmarks/bench_spark.py --users 250000 1000000
	nice $(BIN)/python benchmarks/real_data.py
	nice $(BIN)/python benchmarks/bench_learners.py
	nice $(BIN)/python benchmarks/winners_curse.py
	nice $(BIN)/python benchmarks/learners_worlds.py
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/graph_recovery.py
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/sachs.py
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/graph_scale.py

# the issue-8 size: 20M users x 5 arms through both engines (~20 min on 2 idle cores, ~10 GB)
bench-spark-20m: $(STAMP)
	$(BIN)/python benchmarks/bench_spark.py --users 20000000 --out reports/bench_spark_20m.json

clean:
	rm -rf demo-out .pytest_cache .hypothesis
