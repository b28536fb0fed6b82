# Infrastructure targets (included by the Makefile). See "Deploying to AWS" in README.md.
ENV ?= dev
DIST ?= dist/$(ENV)
CDK_OUT ?= cdk.out/$(ENV)
# Pinned CDK CLI (npm), run through npx; the app itself is Python (infra/app.py).
CDK_CLI_VERSION ?= 2.1148.1
CDK := npx --yes aws-cdk@$(CDK_CLI_VERSION)
CDK_APP := $(CURDIR)/.venv/bin/python -m infra.app
CHECKOV_VERSION ?= 3.3.30
# Through uvx, outside the locked environment (which carries Airflow's PyYAML 6.0.2).
CFN_LINT_VERSION ?= 1.58.0
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: package synth deploy infra-lint infra-test

package: setup ## Build job + DAG artifacts into dist/$(ENV) (ENV=dev|prod), config rendered for ENV
	$(RUN) python -m infra.package build --env $(ENV) --dist $(DIST)

synth: setup ## Synthesize the $(ENV) stack to cdk.out/$(ENV) (runs cdk-nag; no AWS account needed)
	CDCLAKE_ENV=$(ENV) $(RUN) python -c "from infra.app import build_app; from infra.envconf import load_env; \
	  app, _ = build_app(load_env('$(ENV)'), outdir='$(CDK_OUT)'); app.synth()"
	@echo "template: $(CDK_OUT)/CdcLake-$(ENV).template.json"

# infra/deploy.py: MWAA's requirements.txt before the stack that names its version, the stack,
# the artifacts and outputs, and (with MWAA) the table writers' pool through InvokeRestApi.
deploy: package ## Deploy the $(ENV) stack (needs AWS credentials + bootstrapped account) and upload artifacts
	$(RUN) python -m infra.deploy --env $(ENV) --dist $(DIST) --cdk "$(CDK)" --app "$(CDK_APP)" \
	  --out $(CDK_OUT)

infra-lint: synth ## cfn-lint, checkov (via uvx), bandit on the $(ENV) template and the Python code
	uvx --from 'cfn-lint==$(CFN_LINT_VERSION)' cfn-lint $(CDK_OUT)/CdcLake-$(ENV).template.json
	BC_SKIP_MAPPING=TRUE uvx --from 'checkov==$(CHECKOV_VERSION)' checkov --skip-download --compact \
	  --framework cloudformation -f $(CDK_OUT)/CdcLake-$(ENV).template.json
	$(RUN) bandit -q -r infra jobs dags tools -ll

infra-test: setup ## Only the infra tests (synth, settings vs config, security, linters, packaging)
	$(RUN) pytest tests/infra $(PYTEST_ARGS)
