# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all screenshots bench bench-spark-20m clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/promo-opt demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# the tests marked slow (schemathesis fuzzing, PostgreSQL end to end, ...); .ci/run runs them after `test`
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# the web app's screenshots in docs/web-app (taken by the browser tests; needs Chromium)
screenshots: $(STAMP)
	PROMO_OPT_SCREENSHOTS=docs/web-app $(BIN)/python -m pytest -q tests/test_web_app.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_allocation.py
	$(BIN)/python benchmarks/mip_rounds.py
	$(BIN)/python benchmarks/capped_plan.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/load_service.py --candidates 100000 --seconds 10 --out reports/load_service_quick.json
	$(BIN)/python benchmarks/bench_web_slider.py --candidates 100000 --moves 100 --min-roi 1.5 --out reports/bench_web_slider_quick.json
	nice $(BIN)/python benchmarks/observational.py
	$(BIN)/python benchmarks/ope_coverage.py --reps 200 --n 4000 --boot 300
	$(BIN)/python benchmarks/hillstrom_email.py
	nice $(BIN)/python benchmarks/bench_spark.py --users 250000 1000000
	nice $(BIN)/python benchmarks/real_data.py
	nice $(BIN)/python benchmarks/bench_learners.py
	nice $(BIN)/python benchmarks/winners_curse.py
	nice $(BIN)/python benchmarks/learners_worlds.py
	nice $(BIN)/python benchmarks/ltv_coverage.py --seeds 20 --customers 20000 --boot 200
	nice $(BIN)/python benchmarks/ltv_objective.py --seeds 5
	nice $(BIN)/python benchmarks/ltv_objective.py --segment --seeds 3 --customers 4000 --candidates 20000
	nice $(BIN)/python benchmarks/ltv_scale.py --customers 100000
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/graph_recovery.py
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/sachs.py
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/graph_scale.py
	$(BIN)/python benchmarks/bench_default.py --sizes 100000 --neighbour
	nice $(BIN)/python benchmarks/generated_worlds.py --worlds 30 --sizes 20000,100000
	$(BIN)/python benchmarks/forecast_bounds.py --worlds 30 --named travel,retail_vouchers,subscription_drift --sizes 20000,100000,1000000
	OMP_NUM_THREADS=1 nice $(BIN)/python benchmarks/known_form.py --worlds 30 --named travel,retail_vouchers,subscription_drift --sizes 20000,100000

# the issue-8 size: 20M users x 5 arms through both engines (~20 min on 2 idle cores, ~10 GB)
bench-spark-20m: $(STAMP)
	$(BIN)/python benchmarks/bench_spark.py --users 20000000 --out reports/bench_spark_20m.json

clean:
	rm -rf demo-out .pytest_cache .hypothesis
