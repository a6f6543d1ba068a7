# The two Quick start commands. Each runs its own (idempotent) set-up first.
.PHONY: setup run test lint

setup:
	@./infra/setup.sh

run: setup
	.venv/bin/cryptolake run

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
