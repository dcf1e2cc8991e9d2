# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000

.PHONY: run test lint static migrate demo worker beat clean bench

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

static: $(VENV)/.installed node_modules/.installed
	$(PY) manage.py collectstatic --noinput --verbosity 0

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

run: static demo
	@echo "homevisit: http://$(HOST)/  (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

test: static lint
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

# Production processes (with DATABASE_URL and CELERY_BROKER_URL set); deploy/ has their systemd
# units. The worker runs without gossip, mingle and heartbeat (issue 15: one queue needs none, and
# they are where reconnecting to a restarted broker crashed).
WORKER_FLAGS := --without-gossip --without-mingle --without-heartbeat
worker: $(VENV)/.installed
	$(VENV)/bin/celery -A homevisit worker --loglevel INFO $(WORKER_FLAGS)

beat: $(VENV)/.installed
	$(VENV)/bin/celery -A homevisit beat --loglevel INFO

# Issue 9's figures on PostgreSQL (DATABASE_URL, Redis as CELERY_BROKER_URL); long: BENCH_SCALE=county
# for a quick run. Writes bench/results/<date>.json and docs/benchmarks.md. Not part of test or CI.
bench: $(VENV)/.installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) node_modules var
