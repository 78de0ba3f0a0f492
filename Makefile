# customer_value — the front door. `make` alone lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= configs/default.yaml
CV     := $(BIN)/customer-value

.DEFAULT_GOAL := help
.PHONY: help install lock browser notebooks doctor simulate validate features catalog train predict target monitor uplift bench-uplift bench-intervals ui test test-fast lint bench bench-features bench-predict bench-evaluate bench-fuzz bench-personas bench-monitor evaluate backtest clean

help: ## Show the targets with one line each
	@echo "customer_value — make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

# Installs use the committed pins: requirements.lock (dev + spark extras, every transitive package)
# and requirements-bench.lock (the bench extra). uv installs them when it can: it is bootstrapped
# from PyPI at a pinned version into $(VENV)/.uv-$(UV_VERSION), outside the venv's packages; pip
# installs the same pins when uv is unavailable or fails, or always with INSTALLER=pip.
LOCK        := requirements.lock
BENCH_LOCK  := requirements-bench.lock
BENCH_STAMP := $(VENV)/.bench-stamp
UV_VERSION  := 0.13.9
UV          := $(VENV)/.uv-$(UV_VERSION)/bin/uv
INSTALLER   ?= uv
PIP         := $(BIN)/python -m pip --disable-pip-version-check
UV_BOOTSTRAP = { test -x $(UV) || $(PIP) install --quiet --target $(VENV)/.uv-$(UV_VERSION) uv==$(UV_VERSION); }

# install_lock LOCKFILE,UV-VERB (sync, or install -r): uv (falls back to pip), then the project itself (editable, no deps).
define install_lock
if [ "$(INSTALLER)" = uv ] && $(UV_BOOTSTRAP) \
   && $(UV) pip $(2) $(1) --quiet --python $(BIN)/python \
   && $(UV) pip install --quiet --python $(BIN)/python --no-deps -e .; then \
  echo "  installed $(1) with uv $(UV_VERSION)"; \
else \
  if [ "$(INSTALLER)" = uv ]; then echo "  uv unavailable or failed: installing the same pins with pip"; fi; \
  $(PIP) install --quiet -r $(1) && $(PIP) install --quiet --no-deps -e . \
    && echo "  installed $(1) with pip"; \
fi
endef

# The venv is (re)synced to the lock when pyproject.toml or the lock changes; later runs start at once.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "customer_value needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing customer_value and its pinned dependencies ($(LOCK)) into $(VENV)..."
	@$(call install_lock,$(LOCK),sync)
	@touch $(STAMP)

install: $(STAMP) ## Create .venv; install the project and requirements.lock (uv, else pip; INSTALLER=pip)

$(BENCH_STAMP): $(STAMP) $(BENCH_LOCK)
	@echo "Installing the bench extra ($(BENCH_LOCK)) into $(VENV)..."
	@$(call install_lock,$(BENCH_LOCK),install -r)
	@touch $(BENCH_STAMP)

# Re-resolve the locks after a dependency change in pyproject.toml: versions already pinned stay
# unless they must move; UPGRADE=1 takes the newest versions the ranges allow. Review, then commit.
LOCK_FLAGS = --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock'
lock: ## Re-resolve the lock files after a pyproject.toml change (UPGRADE=1: newest allowed)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(UV_BOOTSTRAP)
	$(UV) pip compile $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade,) --extra dev --extra spark pyproject.toml -o $(LOCK)
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))' \
	  | $(UV) pip compile $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade,) -c $(LOCK) - -o $(BENCH_LOCK)

simulate: $(STAMP) ## Simulate the default customer base (data/raw) and its ground truth (data/truth)
	$(CV) simulate --config $(CONFIG)

validate: $(STAMP) ## Validate the configured data and print the report (CONFIG=...)
	$(CV) validate --config $(CONFIG)

features: $(STAMP) ## Write the feature table at AS_OF (default: last date) to data/processed/features.parquet
	$(CV) features --config $(CONFIG) $(if $(AS_OF),--as-of $(AS_OF),)

catalog: $(STAMP) ## Regenerate docs/features.md from the feature catalog
	$(CV) catalog --output docs/features.md

train: $(STAMP) ## The main job on CONFIG (default: simulated data, simulated on first use)
	$(CV) train --config $(CONFIG)

predict: $(STAMP) ## Score the whole base with the champion models -> data/processed/predictions.parquet
	$(CV) predict --config $(CONFIG) $(if $(AS_OF),--as-of $(AS_OF),)

target: $(STAMP) ## Whom to contact for a retention budget (BUDGET=5000 CONTACT_COST=2.5 UPLIFT=learned file) -> data/processed/contacts.csv
	$(CV) target --config $(CONFIG) $(if $(BUDGET),--budget $(BUDGET),) $(if $(CONTACT_COST),--contact-cost $(CONTACT_COST),) $(if $(UPLIFT),--uplift $(UPLIFT),)

# The default data has no campaign: uplift reads configs/campaign.yaml unless CONFIG is given.
UPLIFT_CONFIG := $(if $(filter command line environment,$(origin CONFIG)),$(CONFIG),configs/campaign.yaml)
uplift: $(STAMP) ## Who a retention contact changes, from a randomized campaign (default: the simulated one) -> data/processed/uplift.parquet
	$(CV) uplift --config $(UPLIFT_CONFIG)

monitor: $(STAMP) ## Drift of the latest scoring against the training snapshot (exit 3 on drift; PREDICTIONS=earlier file)
	$(CV) monitor --config $(CONFIG) $(if $(AS_OF),--as-of $(AS_OF),) $(if $(PREDICTIONS),--predictions $(PREDICTIONS),)

doctor: $(STAMP) ## Check the store; mark runs killed mid-way as KILLED, finish interrupted alias moves
	$(CV) doctor --config $(CONFIG)

ui: $(STAMP) ## Open the MLflow UI on the configured store (tracking.ui_port, or UI_PORT=...; loopback)
	$(CV) ui --config $(CONFIG) $(if $(UI_HOST),--host $(UI_HOST),) $(if $(UI_PORT),--port $(UI_PORT),)

test: $(STAMP) ## Run the whole test suite (slow tests included; installs Chromium when it can)
	@$(MAKE) --no-print-directory browser || true
	$(BIN)/python -m pytest

# The browser test drives Debian's Chromium; without it that test skips and says why.
browser: ## Install Debian's Chromium for the browser test (as root with apt-get; otherwise explain)
	@if command -v chromium >/dev/null 2>&1; then echo "browser: $$(chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: installing Debian's chromium for the browser test..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || { echo "browser: apt-get could not install chromium; the browser test will skip"; exit 1; }; \
	else echo "browser: no chromium, and no root apt-get to install it; the browser test will skip"; exit 1; fi

notebooks: $(STAMP) ## Open the notebooks in JupyterLab on 127.0.0.1 (installs jupyterlab on first use)
	@$(BIN)/python -c 'import jupyterlab' 2>/dev/null || $(BIN)/python -m pip install --quiet --disable-pip-version-check jupyterlab
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

bench-features: $(BENCH_STAMP) ## Feature building on 1M and 10M transactions vs lifetimes and DuckDB
	$(BIN)/python benchmarks/bench_features.py --sizes 1000000,10000000 --out reports/bench_features.md --readme README.md

bench-predict: $(STAMP) ## Scoring 1M customers with and without reason codes
	$(BIN)/python benchmarks/bench_predict.py --customers 1000000 --out reports/bench_predict.md

bench: $(BENCH_STAMP) bench-evaluate bench-fuzz ## All benchmarks and backtests side by side -> reports/bench.md (< 30 min on 2 cores)
	$(BIN)/python benchmarks/bench.py

bench-monitor: $(STAMP) ## Drift alarms on unchanged vs edited simulated logs (~3 min) -> reports/bench_monitor.md
	$(BIN)/python benchmarks/bench_monitor.py --customers 5000 --out reports/bench_monitor.md

bench-uplift: $(STAMP) ## Uplift learners vs the simulated campaign's known effects, 5 seeds (~2 min) -> reports/bench_uplift.md
	$(BIN)/python benchmarks/bench_uplift.py --customers 20000 --seeds 5 --out reports/bench_uplift.md

bench-intervals: $(STAMP) ## CLV interval coverage at three backtest cutoffs of three simulated bases (~17 min) -> reports/bench_intervals.md
	$(BIN)/python benchmarks/bench_intervals.py --customers 5000 --seeds 7 8 9 --out reports/bench_intervals.md

bench-personas: $(STAMP) ## Persona spaces x algorithms vs the simulated true personas and a supervised ceiling (~15 min)
	@test -n "$$(ls data/raw 2>/dev/null)" || $(CV) simulate --config configs/default.yaml
	$(BIN)/python benchmarks/bench_personas.py --out reports/bench_personas.md

bench-fuzz: $(STAMP) ## The CLI fuzz test with a longer budget (60 examples per command)
	CV_FUZZ_EXAMPLES=60 $(BIN)/python -m pytest -q tests/reliability/test_fuzz.py

OR_DATA ?= ../shared/data/online_retail/online_retail_2010-12_2011-12.csv.gz
bench-evaluate: $(STAMP) ## Holdout verdicts vs BG/NBD, MBG/NBD, naive: Online Retail at 4 cutoffs, both simulated bases
	mkdir -p reports
	$(CV) evaluate -c configs/online_retail.yaml --set data.transactions.path=$(abspath $(OR_DATA)) --cal-end 2011-06-11,2011-07-11,2011-08-10,2011-09-09 --holdout-days 91 --output reports/evaluate_online_retail.csv | tee reports/evaluate_online_retail.log
	$(CV) evaluate -c configs/default.yaml --cal-end 2023-06-30 --holdout-days 365 --output reports/evaluate_simulated.csv | tee reports/evaluate_simulated.log
	$(CV) evaluate -c configs/simulated_drift.yaml --cal-end 2023-06-30 --holdout-days 365 --output reports/evaluate_simulated_drift.csv | tee reports/evaluate_simulated_drift.log

evaluate: $(STAMP) ## Holdout verdicts on CONFIG (CAL_END=d1,d2 HOLDOUT=days)
	$(CV) evaluate --config $(CONFIG) --cal-end $(CAL_END) --holdout-days $(HOLDOUT)

backtest: $(STAMP) ## Rolling out-of-time backtest (CONFIG=..., CUTOFFS=d1,d2)
	$(CV) backtest --config $(CONFIG) --cutoffs $(CUTOFFS)

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check src tests

clean: ## Remove generated data, models, runs and the venv
	rm -rf $(VENV) .bench data/raw/* data/truth/* data/processed/* models/* mlflow.db mlruns mlartifacts reports/*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@touch data/raw/.gitkeep data/truth/.gitkeep data/processed/.gitkeep models/.gitkeep
