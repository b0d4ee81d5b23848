# CI/CD targets. The Jenkinsfile and .github/workflows call ONLY make targets, so Jenkins, GitHub
# Actions and a laptop run the same commands (docs/cicd.md). Included by the Makefile (-include mk/*.mk).
# Targets used by the pipelines but defined in other fragments: tools, tf-fmt, tf-validate, tf-lint,
# checkov (mk/infra.mk); venv, lint, test, test-slow (Makefile).

PY        ?= .venv/bin/python
REPORTS   ?= reports
TOOLS_DIR ?= $(HOME)/.cache/esteira/tools

CI_BUILD   ?= build
GIT_SHA    ?= $(shell git rev-parse HEAD 2>/dev/null)
AWS_REGION ?= us-east-1
export AWS_REGION

# ---- images: docker/<name>.Dockerfile -> <registry>/<prefix>/<repo>:<git sha> (ECR tags are immutable)
DEPLOY_ENV    ?= prod
ECR_REGISTRY  ?=
ECR_PREFIX    ?= esteira-$(DEPLOY_ENV)
IMAGE_TAG     ?= $(GIT_SHA)
IMAGES        ?= serving training lambda mlflow
IMAGE_REPO_serving  := serving
IMAGE_REPO_training := training
IMAGE_REPO_lambda   := lambdas
IMAGE_REPO_mlflow   := mlflow
IMAGES_FILE   ?= $(CI_BUILD)/images.json
GIT_REMOTE_URL ?= $(shell git config --get remote.origin.url 2>/dev/null)
image_ref = $(ECR_REGISTRY)/$(ECR_PREFIX)/$(IMAGE_REPO_$(1)):$(IMAGE_TAG)

# ---- Terraform against a real account (the emulator runs are tf-plan-local/tf-apply-local in infra.mk)
CI_TF_DIR       ?= infra/terraform
CI_TOFU         ?= $(TOOLS_DIR)/bin/tf
TF_STATE_BUCKET ?=
TF_STATE_KEY    ?= esteira/$(DEPLOY_ENV)/terraform.tfstate
TF_WORK         ?= $(CURDIR)/$(CI_BUILD)/tf-$(DEPLOY_ENV)
# Extra -backend-config=... arguments (tests point the S3 backend at an emulator with them).
TF_BACKEND_ARGS ?=
# Digest-pinned image references for the plan (deploy.yml passes them); empty -> the stack's default tag.
SERVING_IMAGE  ?=
TRAINING_IMAGE ?=
LAMBDA_IMAGE   ?=
MLFLOW_IMAGE   ?=
# The provider mirror config from scripts/tools.sh, else an empty one: tofu prints the warning about a
# missing CLI config file (e.g. an inherited TF_CLI_CONFIG_FILE) on stdout, which corrupts outputs.json.
CI_TF_ENV = TF_CLI_CONFIG_FILE=$(or $(wildcard $(TOOLS_DIR)/tofurc),/dev/null) TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 \
             TF_DATA_DIR=$(TF_WORK)/.terraform
CI_TF_IMAGE_VARS := $(if $(SERVING_IMAGE),-var=serving_image_uri=$(SERVING_IMAGE)) \
                    $(if $(TRAINING_IMAGE),-var=training_image_uri=$(TRAINING_IMAGE)) \
                    $(if $(LAMBDA_IMAGE),-var=lambda_image_uri=$(LAMBDA_IMAGE)) \
                    $(if $(MLFLOW_IMAGE),-var=mlflow_image_uri=$(MLFLOW_IMAGE))

# ---- deploy hand-off and workflow
GITHUB_REPOSITORY ?= esteira-mlops/esteira
DEPLOY_WORKFLOW   ?= deploy.yml
DEPLOY_REF        ?= main
SERVING_URL       ?=
STATE_MACHINE_ARN ?=
# JSON object for the execution input; read by scripts/ci.py from the environment (never shell-quoted).
TRAIN_INPUT       ?= {}
export TRAIN_INPUT
TRAIN_WAIT        ?= 1
TRAIN_TIMEOUT     ?= 5400

ACTIONLINT := $(TOOLS_DIR)/bin/actionlint

.PHONY: ci-local ci-info ci-apt test-unit test-integration lint-ci lint-workflows lint-jenkinsfile ci-report \
        ci-cdk images push-images ecr-login trigger-deploy tf-init tf-plan tf-apply smoke-test train-start

# The Jenkins stages of a branch build, in order (tests/cicd checks this list against the Jenkinsfile).
CI_STAGES := ci-info venv tools lint tf-fmt tf-lint lint-ci test-unit test-integration ci-report

ci-local: ## run a Jenkins branch build's stages locally, in order (no images, no deploy)
	@set -e; for t in $(CI_STAGES); do echo "== make $$t"; $(MAKE) --no-print-directory $$t; done

ci-info: ## print what this CI run builds (commit, tools) - the checkout stage's record
	@echo "commit      $(GIT_SHA)"
	@echo "branch      $$(git rev-parse --abbrev-ref HEAD 2>/dev/null)"
	@echo "python      $$($(PY) --version 2>/dev/null || echo 'no venv yet')"
	@echo "tools dir   $(TOOLS_DIR)"
	@test -n "$(GIT_SHA)" || { echo "not a git checkout" >&2; exit 1; }

ci-apt: ## install the Debian packages every area's tests need (scripts/apt-packages-*.txt)
	sudo apt-get update -qq
	grep -hv '^\s*#' scripts/apt-packages-*.txt | xargs sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

# Recursive (=) on purpose: the Makefile's PYTEST is `:=`, which expands $@ while it is still empty and so
# writes reports/junit-.xml for every target; this one names the file after the target.
CI_PYTEST = $(PY) -m pytest --junitxml=$(REPORTS)/junit-$@.xml --cov=model --cov=pipelines --cov=lambdas \
            --cov-report=xml:$(REPORTS)/coverage-$@.xml --cov-report=term:skip-covered $(PYTEST_ARGS)

# The default suite split in two so Jenkins shows them as separate stages; together they are `make test`.
test-unit: venv ## unit tests (tests/unit: pure, fast) -> reports/junit-test-unit.xml
	@mkdir -p $(REPORTS)
	$(CI_PYTEST) -m "not slow" tests/unit

test-integration: venv ## every other default-suite test: MLflow, HTTP, moto/emulator, Terraform chain
	@mkdir -p $(REPORTS)
	$(CI_PYTEST) -m "not slow" --ignore=tests/unit tests

lint-ci: lint-workflows lint-jenkinsfile ## lint the pipelines themselves

lint-workflows: venv ## actionlint (runs shellcheck on run: blocks) + yamllint on .github/
	@test -x $(ACTIONLINT) || { echo "actionlint missing: run make tools" >&2; exit 1; }
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(ACTIONLINT) -no-color
	$(VENV)/bin/yamllint --strict -c .github/yamllint.yml .github

lint-jenkinsfile: ## parse the Jenkinsfile with Groovy (Debian groovy + JDK 17) and list its stages
	@mkdir -p $(CI_BUILD)
	bash scripts/jenkinsfile-check.sh Jenkinsfile > $(CI_BUILD)/jenkinsfile.json
	@python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); \
	  print("Jenkinsfile parsed; stages:", " | ".join("/".join(s["path"]) for s in d["stages"]))' $(CI_BUILD)/jenkinsfile.json

ci-report: venv ## Markdown summary of reports/junit-*.xml and coverage (Jenkins + GitHub job summary)
	$(PY) scripts/ci.py report --reports $(REPORTS) --out $(REPORTS)/summary.md

CDK_APP ?= infra/cdk/app.py
CDK_OUT ?= $(CURDIR)/$(CI_BUILD)/cdk.out

ci-cdk: venv ## synthesise the CDK app offline and cfn-lint the templates (skips until the app exists)
	@if [ ! -f $(CDK_APP) ]; then echo "$(CDK_APP) not there yet: nothing to synthesise"; exit 0; fi; \
	set -e; rm -rf $(CDK_OUT); mkdir -p $(CDK_OUT); \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_OUTDIR=$(CDK_OUT) $(CURDIR)/$(PY) $(CDK_APP); \
	ls $(CDK_OUT)/*.template.json >/dev/null; \
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- $(CDK_OUT)/*.template.json; \
	echo "cfn-lint clean: $$(ls $(CDK_OUT)/*.template.json | wc -l) template(s)"

# ---- images (Docker-capable agent only; Jenkins label 'docker')
ci-require-registry:
	@test -n "$(ECR_REGISTRY)" || { echo "ECR_REGISTRY is not set (<account>.dkr.ecr.<region>.amazonaws.com)" >&2; exit 2; }
	@test -n "$(IMAGE_TAG)" || { echo "IMAGE_TAG/GIT_SHA is empty: not a git checkout?" >&2; exit 2; }

images: $(addprefix image-,$(IMAGES)) ## docker build serving/training/lambda/mlflow images tagged with the git SHA

# BuildKit reads docker/<image>.Dockerfile.dockerignore for the context; GIT_COMMIT is the provenance
# every run and model version records (docs/images.md).
image-%: ci-require-registry
	DOCKER_BUILDKIT=1 docker build --pull --file docker/$*.Dockerfile --tag $(call image_ref,$*) \
	  --build-arg GIT_COMMIT=$(GIT_SHA) \
	  --label org.opencontainers.image.revision=$(GIT_SHA) \
	  --label org.opencontainers.image.source=$(GIT_REMOTE_URL) .

ecr-login: ci-require-registry
	aws ecr get-login-password --region $(AWS_REGION) | docker login --username AWS --password-stdin $(ECR_REGISTRY)

push-images: ecr-login $(addprefix push-,$(IMAGES)) ## push the images, then record their ECR digests in build/images.json
	$(PY) scripts/ci.py images --git-sha $(GIT_SHA) --out $(IMAGES_FILE) \
	  $(foreach i,$(IMAGES),--image $(i)=$(call image_ref,$(i)))

# ECR tags are immutable: a rebuilt commit (replay, re-run) keeps the image already pushed for it.
push-%: ci-require-registry
	@if aws ecr describe-images --region $(AWS_REGION) --repository-name $(ECR_PREFIX)/$(IMAGE_REPO_$*) \
	    --image-ids imageTag=$(IMAGE_TAG) >/dev/null 2>&1; then \
	  echo "$(call image_ref,$*) already in ECR: kept"; \
	else \
	  docker push $(call image_ref,$*); \
	fi

trigger-deploy: ## start .github/workflows/deploy.yml (workflow_dispatch) with the image digests; needs GITHUB_TOKEN
	$(PY) scripts/ci.py dispatch --repo $(GITHUB_REPOSITORY) --workflow $(DEPLOY_WORKFLOW) \
	  --ref $(DEPLOY_REF) --images $(IMAGES_FILE)

# ---- Terraform against AWS (GitHub Actions with OIDC credentials; state in S3 with a lock file)
tf-init:
	@test -n "$(TF_STATE_BUCKET)" || { echo "TF_STATE_BUCKET is not set" >&2; exit 2; }
	@mkdir -p $(TF_WORK)
	cd $(CI_TF_DIR) && $(CI_TF_ENV) $(CI_TOFU) init -no-color -input=false -reconfigure \
	  -backend-config=bucket=$(TF_STATE_BUCKET) -backend-config=key=$(TF_STATE_KEY) \
	  -backend-config=region=$(AWS_REGION) -backend-config=encrypt=true -backend-config=use_lockfile=true \
	  $(TF_BACKEND_ARGS)

tf-plan: tf-init ## plan envs/$(DEPLOY_ENV).tfvars -> build/tf-<env>/{tfplan,plan.txt,plan.exitcode}
	@set -e; cd $(CI_TF_DIR); rc=0; $(CI_TF_ENV) $(CI_TOFU) plan -no-color -input=false -lock-timeout=10m \
	  -detailed-exitcode -var-file=envs/$(DEPLOY_ENV).tfvars $(CI_TF_IMAGE_VARS) -out=$(TF_WORK)/tfplan || rc=$$?; \
	  [ $$rc -ne 1 ] || exit 1; echo $$rc > $(TF_WORK)/plan.exitcode; \
	  $(CI_TF_ENV) $(CI_TOFU) show -no-color $(TF_WORK)/tfplan > $(TF_WORK)/plan.txt; \
	  echo "plan: $$( [ $$rc -eq 2 ] && echo changes || echo 'no changes') -> $(TF_WORK)/tfplan"

tf-apply: tf-init ## apply the SAVED plan build/tf-<env>/tfplan (never a fresh plan), then write outputs.json
	@test -f $(TF_WORK)/tfplan || { echo "no saved plan at $(TF_WORK)/tfplan: run make tf-plan" >&2; exit 2; }
	cd $(CI_TF_DIR) && $(CI_TF_ENV) $(CI_TOFU) apply -no-color -input=false -lock-timeout=10m $(TF_WORK)/tfplan
	cd $(CI_TF_DIR) && $(CI_TF_ENV) $(CI_TOFU) output -no-color -json > $(TF_WORK)/outputs.json

smoke-test: venv ## post-deploy smoke test: SERVING_URL, or serving_url from build/tf-<env>/outputs.json
	$(PY) scripts/ci.py smoke $(if $(SERVING_URL),--url $(SERVING_URL),--outputs $(TF_WORK)/outputs.json)

train-start: venv ## start the train-evaluate-deploy state machine (STATE_MACHINE_ARN) and wait when TRAIN_WAIT=1
	@test -n "$(STATE_MACHINE_ARN)" || { echo "STATE_MACHINE_ARN is not set" >&2; exit 2; }
	$(PY) scripts/ci.py train --state-machine-arn $(STATE_MACHINE_ARN) \
	  --name-prefix $(DEPLOY_ENV) --timeout $(TRAIN_TIMEOUT) --out $(CI_BUILD)/train-execution.json \
	  $(if $(filter 1,$(TRAIN_WAIT)),--wait)

# ---- delivery = codepipeline (docs/delivery.md): Jenkins publishes a release zip, AWS CodePipeline applies it
ESTEIRA_DELIVERY ?= github
RELEASE_BUCKET   ?=
RELEASE_KEY      ?= releases/release.zip
RELEASE_ZIP      ?= $(CI_BUILD)/release.zip
RELEASE_MANIFEST ?= release.json

.PHONY: publish-release release-deploy

# workflow-input.json (the execution the pipeline starts) = TRAIN_INPUT (a JSON object, e.g. the data URIs) + the trigger.
publish-release: venv ## zip release.json (build/images.json) + the commit's tree and put it to RELEASE_BUCKET (starts the pipeline)
	@test "$(ESTEIRA_DELIVERY)" = codepipeline || { echo "ESTEIRA_DELIVERY=$(ESTEIRA_DELIVERY): publish-release is for codepipeline (github uses trigger-deploy)" >&2; exit 2; }
	@test -n "$(RELEASE_BUCKET)" || { echo "RELEASE_BUCKET is not set (terraform output release_object)" >&2; exit 2; }
	$(PY) scripts/release.py build --images $(IMAGES_FILE) --out $(RELEASE_ZIP)
	$(PY) scripts/release.py publish --zip $(RELEASE_ZIP) --bucket $(RELEASE_BUCKET) --key $(RELEASE_KEY)

# CodePipeline's deploy build (modules/delivery buildspec) runs this in the unzipped release: the same
# tf-plan, tf-apply and smoke-test deploy.yml runs, with the manifest's commit and digests.
release-deploy: ## plan + apply the release manifest's digests (RELEASE_MANIFEST), then smoke-test
	@test -f $(RELEASE_MANIFEST) || { echo "no release manifest at $(RELEASE_MANIFEST)" >&2; exit 2; }
	$(MAKE) --no-print-directory tf-plan tf-apply smoke-test $$(python3 scripts/release.py make-vars $(RELEASE_MANIFEST))
