# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000

.PHONY: run test lint static migrate demo worker beat clean screenshots bench

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# ECharts with only the charts the dashboards draw, and the visit form's offline copy (idb),
# bundled by esbuild into build/ (served by staticfiles; never committed).
build/.built: node_modules/.installed $(wildcard frontend/*.js)
	npm run --silent build
	touch $@

static: $(VENV)/.installed build/.built
	$(PY) manage.py collectstatic --noinput --verbosity 0

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

run: static demo
	@echo "homevisit: http://$(HOST)/  (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST)

# The README's screenshots and docs/page-weights.md, from the demo served on a free port.
screenshots: static demo
	$(PY) docs/screenshots.py --serve

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
	rm -rf $(VENV) node_modules build var
