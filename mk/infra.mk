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
# The emulator gets fake credentials only: never a developer's real account.
EMU_ENV := $(TF_ENV) AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing \
           AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PROFILE= AWS_EC2_METADATA_DISABLED=true

.PHONY: tools tf-fmt tf-validate tf-lint checkov tf-plan-local tf-apply-local tf-stage

tools:
	ESTEIRA_TOOLS_DIR=$(TOOLS_DIR) bash scripts/tools.sh

tf-fmt:
	$(TOFU) fmt -check -recursive -diff $(TF_DIR)

# Copy the root module and the ASL templates (same relative layout); local backend for local runs.
tf-stage:
	@rm -rf $(TF_STAGE) && mkdir -p $(TF_STAGE)/infra
	@cp -r $(TF_DIR) $(TF_STAGE)/infra/ && cp -r stepfunctions $(TF_STAGE)/
	@rm -rf $(TF_STAGE)/$(TF_DIR)/.terraform $(TF_STAGE)/$(TF_DIR)/.terraform.lock.hcl
	@printf 'terraform {\n  backend "local" {}\n}\n' > $(TF_STAGE)/$(TF_DIR)/backend_override.tf
	@cd $(TF_STAGE)/$(TF_DIR) && $(TF_ENV) $(TOFU) init -no-color >/dev/null

tf-validate: tf-stage
	cd $(TF_STAGE)/$(TF_DIR) && $(TF_ENV) $(TOFU) validate -no-color

tf-lint:
	cd $(TF_DIR) && $(TFLINT) --recursive --config=$(CURDIR)/$(TF_DIR)/.tflint.hcl --format=compact

checkov:
	$(CHECKOV) --directory $(TF_DIR) --framework terraform --quiet --compact --skip-download

# Plan/apply the root module against a moto server on a free loopback port (stopped by PID).
define with_moto
	@set -e; port=$$($(PY) -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'); \
	MOTO_IAM_LOAD_MANAGED_POLICIES=true $(PY) -m moto.server -H 127.0.0.1 -p $$port > $(TF_STAGE)/moto.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 100); do $(PY) -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$$port/moto-api/',timeout=1)" 2>/dev/null && break; sleep 0.2; done; \
	cd $(TF_STAGE)/$(TF_DIR) && $(EMU_ENV) $(TOFU) $(1) -no-color -var-file=$(TF_VARS) -var=aws_endpoint_url=http://127.0.0.1:$$port $(EMU_VARS)
endef
# Emulator-only switches for what moto 5.2.5 cannot create (docs/infra-notes.md).
EMU_VARS :=

tf-plan-local: tf-stage
	$(call with_moto,plan)

tf-apply-local: tf-stage
	$(call with_moto,apply -auto-approve)
