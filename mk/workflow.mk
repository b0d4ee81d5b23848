# Workflow (issue 5): the state machine, its Lambdas, localaws, LocalStack.
.PHONY: test-workflow lint-workflow localstack-venv test-localstack localaws

test-workflow: venv ## workflow suite on the embedded AWS (default-speed tests only)
	@mkdir -p $(REPORTS)
	$(PYTEST) -m "not slow and not localstack" tests/workflow

lint-workflow: venv ## ruff, mypy, hadolint and shellcheck for the workflow files
	$(VENV)/bin/ruff check lambdas localaws pipelines tests/workflow tests/localstack
	$(VENV)/bin/ruff format --check lambdas localaws pipelines tests/workflow tests/localstack
	$(VENV)/bin/mypy lambdas localaws pipelines
	$(VENV)/bin/hadolint docker/lambda.Dockerfile docker/training.Dockerfile
	$(VENV)/bin/shellcheck scripts/localstack.sh scripts/qase.sh

localstack-venv: ## LocalStack community in its own Python 3.13 venv under ~/.cache/esteira
	scripts/localstack.sh venv

test-localstack: venv ## the LocalStack suite (skips without Python 3.13; LOCALSTACK_ENDPOINT uses a running one)
	@mkdir -p $(REPORTS)
	-scripts/localstack.sh venv
	$(PYTEST) -m localstack tests/localstack

localaws: venv ## embedded AWS with the workflow deployed (needs MLFLOW_TRACKING_URI); ARGS="--run ..." runs it once
	$(PY) -m localaws --deploy $(ARGS)
