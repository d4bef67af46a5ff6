# Two commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
# Every Python package comes from requirements.lock: pinned, with hashes (`make lock` regenerates it).
LOCK := requirements.lock
TOOLS := .venv-tools

.PHONY: run test bench venv clean system-deps soak mutation screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) deploy/lock.py check
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		echo "installing python3-venv from Debian"; \
		apt-get update -qq && apt-get install -y -qq python3-venv; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: venv
	$(BIN)/devicectl serve --simulate

# Debian packages the tests need: a real Mosquitto broker and Chromium for the browser tests.
system-deps:
	@missing=""; \
	[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing="$$missing mosquitto"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian"; \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

# Static checks before the tests: ruff (pyproject.toml) over the code it already passes on, mypy
# strict on safety/ and drivers/ ([tool.mypy]). The tests outside tests/dst join LINT_PATHS once
# they pass.
LINT_PATHS := safety drivers simulators devicectl examples bench tests/dst

test: lock-check venv system-deps
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The API fuzzed with 100 examples per operation, positive and negative, against the running service
# with both simulated units, patients and sessions (make test runs the same with 25: DEVICECTL_FUZZ_EXAMPLES),
# then statefully: 500 scenarios of up to 40 calls chained along the schema's OpenAPI links
# (make test: 75 of up to 20; DEVICECTL_FUZZ_SCENARIOS, DEVICECTL_FUZZ_STEPS).
fuzz: venv
	DEVICECTL_FUZZ_EXAMPLES=100 DEVICECTL_FUZZ_SCENARIOS=500 DEVICECTL_FUZZ_STEPS=40 \
		$(BIN)/python -m pytest -q tests/test_api_fuzz.py tests/test_api_fuzz_stateful.py

# The touchscreen's screenshots in docs/screenshots/ (the tests save theirs in a temporary folder).
screenshots: venv system-deps
	DEVICECTL_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_ui.py tests/test_ui_clinic.py tests/test_ui_patients.py

BENCHMARKS := bench/driver_rtt.py bench/reaction.py bench/audit_rate.py bench/cryo_timing.py \
	bench/store_throughput.py bench/reaction_load.py bench/seam_faults.py

bench: venv
	@for script in $(BENCHMARKS); do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Mutation testing of the safety kernels (docs/mutation.md). cosmic-ray is installed on first use
# (it is not a test dependency); it mutates a copy in $(MUTATION_DIR), never the working tree, at
# the lowest priority, and stops after $(MUTATION_BUDGET) (the report then counts what was run).
# MUTATION_MODULES="safety" mutates the whole package instead of the two runtime kernels.
MUTATION_DIR := build/mutation
MUTATION_BUDGET ?= 25m
mutation: venv
	@$(BIN)/python -c 'import cosmic_ray' 2>/dev/null || $(BIN)/python -m pip install -q cosmic-ray
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)/tests
	cp -r safety pyproject.toml bench/mutation.toml $(MUTATION_DIR)/
	$(if $(MUTATION_MODULES),sed -i 's|^module-path = .*|module-path = [$(foreach m,$(MUTATION_MODULES),"$(m)",)]|' $(MUTATION_DIR)/mutation.toml)
	cp tests/__init__.py tests/safety_scenarios.py tests/test_safety_*.py $(MUTATION_DIR)/tests/
	find $(MUTATION_DIR) -name __pycache__ -prune -exec rm -rf {} +
	cd $(MUTATION_DIR) && PATH=$(abspath $(BIN)):$$PATH cosmic-ray baseline mutation.toml
	cd $(MUTATION_DIR) && PATH=$(abspath $(BIN)):$$PATH cosmic-ray init mutation.toml session.sqlite
	-cd $(MUTATION_DIR) && PATH=$(abspath $(BIN)):$$PATH timeout $(MUTATION_BUDGET) nice -n 19 cosmic-ray exec mutation.toml session.sqlite
	$(BIN)/cr-report --surviving-only --show-diff $(MUTATION_DIR)/session.sqlite
	@echo "survival rate (%):" && $(BIN)/cr-rate $(MUTATION_DIR)/session.sqlite
	$(BIN)/python bench/mutation_score.py $(MUTATION_DIR)/session.sqlite

# Deterministic simulation: 10 000 seeds on 2 processes, or `make soak SEED=n` to replay one.
soak: venv
	$(BIN)/python bench/soak.py $(if $(SEED),--seed $(SEED))

.PHONY: lock lock-check sbom fuzz

# pyproject.toml and the lock must agree: a changed dependency fails here until `make lock` ran.
lock-check:
	@$(PYTHON) deploy/lock.py check

# Regenerate the lock from pyproject.toml (every version pinned, every file's sha256).
lock:
	test -x $(TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q 'pip-tools>=7.4,<8' 'cyclonedx-bom>=4,<8'; }
	$(TOOLS)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra test -o $(LOCK) pyproject.toml deploy/build-requirements.in
	$(PYTHON) deploy/lock.py stamp

# A CycloneDX SBOM (JSON) of what is installed in the venv, as a regulator expects.
sbom: venv
	test -x $(TOOLS)/bin/cyclonedx-py || { $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q 'pip-tools>=7.4,<8' 'cyclonedx-bom>=4,<8'; }
	$(TOOLS)/bin/cyclonedx-py environment --output-format JSON --output-file sbom.cdx.json $(BIN)/python
	@echo "wrote sbom.cdx.json"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
