# One command each to make a fresh machine usable: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# torch/torchvision are pinned here: on the project's machines these releases install from local
# disk, other versions download gigabytes or break torchvision's operators.
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
STAMP   = $(VENV)/.installed

# The suite runs in two pytest workers, one test file each at a time (a file's fixtures are shared
# by its tests): most tests wait on subprocesses, servers and imports, so two keep both cores busy.
TEST_WORKERS ?= 2
PYTEST  = $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: setup run test check lint ui clean cluster-up cluster-down results

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The whole reference study (14 settings, in parallel) on the bundled digits: no network needed.
run: setup
	$(PY) train.py -m experiment=paper dataset=digits trainer.progress=off

# The published study (docs/results/fashion_mnist/): 19 arms x 3 seeds x 50 epochs on
# Fashion-MNIST, about 2.5 hours of a quiet 2-core CPU. Idempotent: after a stop, the same command reuses
# the finished runs, resumes the interrupted ones, and ends by rewriting the page from the store.
results: setup
	$(PY) train.py -m experiment=fashion_mnist_study trainer.progress=off report.enabled=false
	$(PY) -m lrdecay.report.publish --experiment lrdecay-fashion_mnist-study \
		--out docs/results/fashion_mnist --command "make results" --preset fashion_mnist_study

test: lint
	$(PYTEST)

# The fast tier for the edit-test loop: no end-to-end CLI tests.
check: lint
	$(PYTEST) -m "not slow"

# Style, formatting and the architecture's import rules (pyproject.toml's [tool.importlinter]).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

# Without MLflow's GenAI job runners (a job runner and seven huey consumers, ~1.9 GB of memory and
# ~16 s of CPU at start), which nothing here uses; the same setting as deploy/cluster-up.sh's server.
# One web worker, not MLflow's four: one person's browser needs no more (the requests of a page
# still run concurrently, in its threads), and it is up in ~5 s instead of ~9 with ~9 s less CPU.
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts --host 127.0.0.1 --port 5000 --workers 1

# A local single-node SLURM cluster, PostgreSQL and a PostgreSQL-backed `mlflow server`, as root
# (deploy/, docs/cluster.md); tests/test_cluster.py runs against them. Both are idempotent.
cluster-up:
	@deploy/cluster-up.sh --preflight
	@$(MAKE) --no-print-directory setup
	$(PY) -c 'import psycopg' 2>/dev/null || $(PY) -m pip install -q -e '.[cluster]'
	@MLFLOW=$(VENV)/bin/mlflow deploy/cluster-up.sh

cluster-down:
	@deploy/cluster-down.sh

clean:
	rm -rf outputs multirun .pytest_cache
