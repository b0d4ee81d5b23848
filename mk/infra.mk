# Terraform chain. Included by the main Makefile:  include mk/infra.mk
# Every target runs on a staged copy under build/tf (so init never writes .terraform/ or a
# provider lock file into the repo) with the pinned tools from scripts/tools.sh.
PY        ?= .venv/bin/python
TOOLS_DIR ?= $(HOME)/.cache/esteira/tools
TF_DIR    ?= infra/terraform
TF_STAGE  ?= build/tf
TF_VARS   ?= envs/dev.tfvars

TOFU    := $(TOOLS_DIR)/bin/tf
TFLINT  := $(TOOLS_DIR)/bin/tflint
CHECKOV := $(TOOLS_DIR)/bin/checkov
TF_ENV  := TF_CLI_CONFIG_FILE=$(TOOLS_DIR)/tofurc TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

.PHONY: tools tf-fmt tf-validate tf-lint checkov tf-plan-local tf-apply-local tf-stage

tools:
	ESTEIRA_TOOLS_DIR=$(TOOLS_DIR) bash scripts/tools.sh

tf-fmt:
	$(TOFU) fmt -check -recursive -diff $(TF_DIR)

# Copy the root module, the ASL templates and contract.yaml (same relative layout); local backend for local runs.
tf-stage:
	@rm -rf $(TF_STAGE) && mkdir -p $(TF_STAGE)/infra
	@cp -r $(TF_DIR) $(TF_STAGE)/infra/ && cp -r stepfunctions $(TF_STAGE)/ && cp contract.yaml $(TF_STAGE)/
	@rm -rf $(TF_STAGE)/$(TF_DIR)/.terraform $(TF_STAGE)/$(TF_DIR)/.terraform.lock.hcl
	@printf 'terraform {\n  backend "local" {}\n}\n' > $(TF_STAGE)/$(TF_DIR)/backend_override.tf
	@cd $(TF_STAGE)/$(TF_DIR) && $(TF_ENV) $(TOFU) init -no-color >/dev/null

tf-validate: tf-stage
	cd $(TF_STAGE)/$(TF_DIR) && $(TF_ENV) $(TOFU) validate -no-color

tf-lint:
	cd $(TF_DIR) && $(TFLINT) --recursive --config=$(CURDIR)/$(TF_DIR)/.tflint.hcl --format=compact

checkov:
	$(CHECKOV) --directory $(TF_DIR) --framework terraform --quiet --compact --skip-download

# Plan/apply the root module (TF_VARS) on the embedded AWS with test credentials only (never a developer's
# real account: localaws/terraform.py drops every AWS_* and TF_* from the environment), as tests/infra and the demo do (localaws/terraform.py).
tf-plan-local: venv
	$(PY) -m localaws.terraform --plan --var-file=$(TF_VARS) --workdir=$(TF_STAGE)/local

tf-apply-local: venv
	$(PY) -m localaws.terraform --var-file=$(TF_VARS) --workdir=$(TF_STAGE)/local
