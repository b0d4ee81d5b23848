# CDK path (infra/cdk). `make cdk-synth` writes build/cdk.out/<stack>.template.json offline;
# `make cfn-lint` lints it. ENV picks infra/terraform/envs/<ENV>.tfvars.
PY       ?= .venv/bin/python
CDK_ENV  ?= dev
CDK_OUT  ?= build/cdk.out
CDK_CTX  := $(CURDIR)/infra/cdk/cdk.json
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20

.PHONY: cdk-synth cfn-lint test-cdk

cdk-synth: venv ## synthesise the CDK app offline (CDK_ENV=dev|prod) into build/cdk.out
	@mkdir -p $(CDK_OUT)
	$(PY) -c 'import json, sys; sys.path.insert(0, "infra/cdk"); import aws_cdk as cdk, app; \
	ctx = json.load(open("$(CDK_CTX)"))["context"]; ctx["environment"] = "$(CDK_ENV)"; \
	a = cdk.App(context=ctx, outdir="$(CDK_OUT)"); s = app.build(a); a.synth(); \
	print("$(CDK_OUT)/" + s.stack_name + ".template.json")'

# W3005: CDK adds DependsOn that a Ref/GetAtt already implies (harmless, the CDK's own output).
cfn-lint: cdk-synth ## lint the synthesised template
	$(VENV)/bin/cfn-lint --ignore-checks W3005 --format parseable -- $(CDK_OUT)/*-$(CDK_ENV).template.json

test-cdk: venv ## the CDK tests (assertions, cfn-lint, parity with the Terraform plan)
	$(PY) -m pytest tests/cdk -q
