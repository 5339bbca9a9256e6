# Common entry points. `make setup` once, then `make demo` (the quick start) or `make test`.
PY := .venv/bin/python

.PHONY: setup demo test test-fast lint bench

# scripts/setup.sh runs again only when what it installs from changed (it writes the stamp when it succeeds);
# `bash scripts/setup.sh` forces it.
SETUP_STAMP := .venv/.setup-done
SETUP_INPUTS := scripts/setup.sh pyproject.toml constraints.txt setup.py videomae/video/_jpegbox.c

setup: $(SETUP_STAMP)

$(SETUP_STAMP): $(SETUP_INPUTS)
	bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py --out runs/demo

test: setup
	$(PY) -m pytest -q --durations=15

test-fast:
	$(PY) -m pytest -q -m "not slow"

lint:
	.venv/bin/ruff check .

bench:
	$(PY) bench/model_step.py
	$(PY) bench/ingest_pipeline.py
	$(PY) bench/ingest_scale.py --sizes 10000 100000 1000000 --json data/bench-videos/ingest_scale.json
	$(PY) bench/realistic_videos.py data/bench-videos --layouts 256:75 320:90
	$(PY) bench/loader.py --inputs data/bench-videos --json data/bench-videos/loader.json
	test -d data/sample/shards || ($(PY) -m ingest.sample_data data/sample --small && $(PY) -m ingest --config configs/ingest/sample.yaml)
	$(PY) bench/train_input.py --shards data/sample/shards --json data/bench-videos/train_input.json
	$(PY) bench/api.py

.PHONY: demo-quick local-up local-down cluster-jobs stack-test

demo-quick: setup
	$(PY) scripts/demo.py --quick --out runs/demo-quick

local-up:
	infra/local/start.sh --no-api

local-down:
	infra/local/stop.sh

cluster-jobs:
	docker compose run --rm jobs

# The Docker stack end to end (both images built, CPU override, a worker killed mid-training); also part of `make test`.
stack-test: setup
	PYTHON=$(PY) bash infra/docker/stack-test.sh
