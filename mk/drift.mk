# Drift monitoring (issue 6): the drift check, its tests, and the benchmark against Evidently.
# Evidently is heavy (~270 MB with plotly), so the benchmark runs from its own .venv-bench built from
# requirements/bench.lock (= dev + evidently 0.7.23); the default .venv never needs it.

VENV_BENCH ?= .venv-bench
BENCH_LOCK ?= requirements/bench.lock
BENCH_PY   := $(VENV_BENCH)/bin/python

.PHONY: bench-venv bench-drift test-drift drift-check

$(VENV_BENCH)/.installed: $(BENCH_LOCK) pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV_BENCH)
	$(BENCH_PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV_BENCH)/bin/uv pip sync --quiet --python $(BENCH_PY) $(BENCH_LOCK)
	$(VENV_BENCH)/bin/uv pip install --quiet --python $(BENCH_PY) --no-deps -e .
	touch $@

bench-venv: $(VENV_BENCH)/.installed ## benchmark venv (.venv-bench) from requirements/bench.lock, with Evidently

bench-drift: bench-venv ## drift benchmark vs Evidently -> docs/benchmarks.md (section "drift"; ~2 min)
	$(BENCH_PY) -m benchmarks.drift $(BENCH_DRIFT_ARGS)

test-drift: venv ## only the drift tests (statistics, calibration on BANKING77, drift-check, retrain trigger)
	@mkdir -p $(REPORTS)
	$(PY) -m pytest tests/drift -m "not slow" --junitxml=$(REPORTS)/junit-$@.xml

drift-check: venv ## run one drift check with the current environment (ESTEIRA_CAPTURE_S3_URI, MLFLOW_TRACKING_URI, ...)
	$(PY) -m pipelines.cli drift-check
