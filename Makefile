# One entry point for a fresh machine: each target sets up its own virtualenv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format bench docs lock

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed ## the whole backbone on this machine: emulator + embedded PostgreSQL
	$(BIN)/eventsctl demo --stack dev

test: $(BIN)/.installed ## run the whole test suite (unit + integration) on two workers
	$(BIN)/pytest -n 2

test-fast: $(BIN)/.installed ## the tests that need neither the emulator nor PostgreSQL (< 1 min)
	$(BIN)/pytest -m "not emulator and not postgres"

lint: $(BIN)/.installed ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: $(BIN)/.installed ## regenerate the stack-config and CLI references in docs/
	$(BIN)/python -m events_infra.cli.reference --write

LOCK := $(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --no-header --quiet

lock: $(BIN)/.installed ## regenerate the hashed locks the image and the infra workflow install
	$(LOCK) --extra ops -o requirements/relay.lock
	$(LOCK) --extra deploy --extra ops -o requirements/deploy.lock
	$(BIN)/uv pip compile policy/requirements.txt --generate-hashes --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --no-header --quiet -o policy/requirements.lock

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BIN)/.installed ## print the performance figures
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/program_scale.py
	$(BIN)/python bench/dlq_replay.py
	$(BIN)/python bench/outbox_relay.py
	$(BIN)/python bench/relay_latency.py
	$(BIN)/python bench/consumer_throughput.py
	$(BIN)/python bench/outbox_writer.py
	$(BIN)/python bench/relay_memory.py
	$(BIN)/python bench/relay_shutdown.py
	$(BIN)/python bench/claim_backlog.py
	$(BIN)/python bench/backlog_drain.py
	$(BIN)/python bench/subscription_migrate.py
