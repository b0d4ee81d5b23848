# Serving (issue 3): run the inference service, benchmark it, soak it, lint its image.
.PHONY: serve bench-serve soak lint-docker

MODEL_URI ?=
SOAK_SECONDS ?= 600

serve: venv ## run the inference service locally (MODEL_URI=models:/<name>@champion or a model dir; ESTEIRA_SERVING_PORT=8080)
	@test -n "$(MODEL_URI)" || { echo "set MODEL_URI, e.g. make serve MODEL_URI=models:/esteira-intent@champion"; exit 2; }
	ESTEIRA_MODEL_URI="$(MODEL_URI)" $(PY) -m model.serving

bench-serve: venv ## serving benchmark vs mlflow models serve and in-process -> docs/benchmarks.md
	$(PY) benchmarks/serve.py

soak: venv ## soak the service (SOAK_SECONDS, default 600) with a model swap -> docs/benchmarks.md
	$(PY) benchmarks/soak.py --seconds $(SOAK_SECONDS)

lint-docker: venv ## hadolint the serving image
	$(VENV)/bin/hadolint --failure-threshold info docker/serving.Dockerfile
