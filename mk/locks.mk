# Lock files: requirements/dev.lock is what .venv installs; each image installs its own subset
# (requirements/<set>.lock, compiled with dev.lock as a constraint, so an image runs exactly the versions
# the tests ran; tests/unit/test_locks.py checks both). Regenerate after editing pyproject.toml.
UV        ?= $(VENV)/bin/uv
UV_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
# image lock -> the pyproject extras it installs on top of the core dependencies
IMAGE_LOCKS := serving: lambdas:data training:data,training mlflow:tracking-server

.PHONY: locks
locks: venv ## recompile requirements/*.lock from pyproject.toml (keeps existing pins where they still fit)
	$(UV) pip compile --quiet pyproject.toml --extra dev $(UV_TARGET) -o requirements/dev.lock
	$(UV) pip compile --quiet pyproject.toml --extra dev --extra bench $(UV_TARGET) -o requirements/bench.lock
	@set -e; for spec in $(IMAGE_LOCKS); do \
	  name=$${spec%%:*}; extra=$${spec#*:}; \
	  $(UV) pip compile --quiet pyproject.toml $$(for e in $${extra//,/ }; do printf -- '--extra %s ' $$e; done) \
	    --constraint requirements/dev.lock \
	    $(UV_TARGET) -o requirements/$$name.lock; \
	done
