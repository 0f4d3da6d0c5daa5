# One command each to make a fresh machine usable: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# requirements.lock holds the exact version of every dependency the suite passed with, torch and
# torchvision included (on the project's machines those releases install from local disk; other
# versions download gigabytes or break torchvision's operators).
LOCK    = requirements.lock
STAMP   = $(VENV)/.installed

# The suite runs in two pytest workers, one test file each at a time (a file's fixtures are shared
# by its tests): most tests wait on subprocesses, servers and imports, so two keep both cores busy.
TEST_WORKERS ?= 2
PYTEST  = $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: setup lock run test check lint docs ui clean cluster-up cluster-down results

setup: $(STAMP)

# Exactly the lock (the locked pip first), then the project itself without resolving anything.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $$(grep '^pip==' $(LOCK))
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# The deliberate upgrade step: every dependency of pyproject.toml (extras dev and cluster) to its
# newest release, except torch and torchvision, which keep the lock's pins. Then run the whole
# suite, the browser test included (`make test`), and commit the lock only if it passes.
# LOCK_ARGS= keeps every other pin (after adding a dependency); LOCK_ARGS='-P mlflow' moves one.
LOCK_ARGS ?= --upgrade
lock: setup
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet $(LOCK_ARGS) \
		$(addprefix --upgrade-package ,$(shell grep -E '^torch(vision)?==' $(LOCK))) \
		--extra dev --extra cluster --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

# The whole reference study (14 settings, in parallel) on the bundled digits: no network needed.
run: setup
	$(PY) train.py -m experiment=paper dataset=digits trainer.progress=off

# The published study (docs/results/fashion_mnist/): 23 arms x 10 seeds = 230 runs of 50 epochs on
# Fashion-MNIST (conf/experiment/fashion_mnist_study.yaml), about 10-20 hours of this 2-core CPU,
# two runs at a time. Idempotent, and across machines: it first restores into the store (mlruns/,
# or MLFLOW_TRACKING_URI) the runs exported in the page's data/ folder that the store lacks
# (`python -m lrdecay.report.restore`, matched by config fingerprint; nothing exported yet:
# nothing to do), so the sweep skips every run an earlier session finished, on this machine or
# another, resumes the interrupted ones of this store, and trains the rest.
# After the sweep, whether or not every job finished, the finished runs are exported into the
# page's data/ folder (runs.csv, histories.csv.gz, predictions.npz: `python -m lrdecay.report
# --data` rebuilds the report from them, no store), so a stop loses nothing that finished once
# data/ is committed; the page itself is rewritten only after a sweep that ended well.
STUDY_EXPERIMENT = lrdecay-fashion_mnist-study
STUDY_PAGE       = docs/results/fashion_mnist
results: setup
	$(PY) -m lrdecay.report.restore --data $(STUDY_PAGE)/data --experiment $(STUDY_EXPERIMENT)
	$(PY) train.py -m experiment=fashion_mnist_study trainer.progress=off report.enabled=false; \
	swept=$$?; \
	$(PY) -m lrdecay.report.export --experiment $(STUDY_EXPERIMENT) --out $(STUDY_PAGE)/data \
		&& test $$swept -eq 0
	$(PY) -m lrdecay.report.publish --experiment $(STUDY_EXPERIMENT) \
		--out $(STUDY_PAGE) --command "make results" --preset fashion_mnist_study

test: lint docs
	$(PYTEST)

# The fast tier for the edit-test loop: no end-to-end CLI tests.
check: lint
	$(PYTEST) -m "not slow"

# Style, formatting, types (mypy: pyproject.toml's [tool.mypy], cached in .mypy_cache) and the
# architecture's import rules (pyproject.toml's [tool.importlinter]).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The documentation site (mkdocs.yml, docs/) into site/: strict, so a broken link or anchor, or a
# page missing from the navigation, fails it, and with it `make test`. `mkdocs serve` to preview.
# NO_MKDOCS_2_WARNING: without Material's banner about MkDocs 2, printed on every build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Without MLflow's GenAI job runners (a job runner and seven huey consumers, ~1.9 GB of memory and
# ~16 s of CPU at start), which nothing here uses; the same setting as deploy/cluster-up.sh's server.
# One web worker, not MLflow's four: one person's browser needs no more (the requests of a page
# still run concurrently, in its threads), and it is up in ~5 s instead of ~9 with ~9 s less CPU.
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts --host 127.0.0.1 --port 5000 --workers 1

# A local single-node SLURM cluster, PostgreSQL and a PostgreSQL-backed `mlflow server`, as root
# (deploy/, docs/cluster.md); tests/e2e/test_cluster.py runs against them. Both are idempotent.
cluster-up:
	@deploy/cluster-up.sh --preflight
	@$(MAKE) --no-print-directory setup
	@MLFLOW=$(VENV)/bin/mlflow deploy/cluster-up.sh

cluster-down:
	@deploy/cluster-down.sh

clean:
	rm -rf outputs multirun .pytest_cache .mypy_cache site
