# wabiz.cluster — the two commands a user needs are `make run` and `make test`.
# Every target installs what it is missing first (scripts/bootstrap.sh) and is quick when
# nothing is missing. Stage times of the last runs are in .build/stage-times.tsv.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# The working tree is the collection wabiz.cluster (bootstrap links it under .build/link).
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/link:$(VENV)/lib/python3.11/site-packages
PY := $(VENV)/bin/python
STAGE := scripts/stage.sh
COLL := $(CURDIR)/.build/collections/ansible_collections/wabiz/cluster
ANSIBLE_TEST := cd $(COLL) && ansible-test
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help run test deps images collection lint sanity units integration integration-standin \
        integration-modules integration-cluster-modules properties conformance testbed-smoke package roles molecule test-full \
        dbservers dbservers-stop testbed-down clean lock bench bench-quick chaos

help:
	@echo "make run     - install what is missing, build the images, bring up the local cluster"
	@echo "make test    - install what is missing and run every test stage (what CI runs)"
	@echo "stages: lint sanity units integration testbed-smoke roles molecule bench-quick"
	@echo "make bench  - the benchmarks (about an hour): JSON and PNG files in .build/bench"
	@echo "make chaos  - the fault campaign, 200 rounds (about 50 minutes): faults.json/png in .build/bench"
	@echo "also: images collection test-full testbed-down clean"

deps:
	@bash scripts/bootstrap.sh

images: deps
	@$(STAGE) images $(PY) scripts/images.py build

run: deps images
	@$(STAGE) run ansible-playbook -i inventories/local playbooks/site.yml

# --- test stages, in the order CI runs them ---------------------------------------------------
test: deps
	@rm -f .build/stage-times.tsv
	@$(MAKE) --no-print-directory lint sanity units package images integration testbed-smoke roles molecule bench-quick
	@echo; echo "stage times (s):"; column -t .build/stage-times.tsv

lint: deps
	@$(STAGE) ruff ruff check .
	@$(STAGE) shellcheck shellcheck scripts/*.sh images/*/entrypoint images/bare/machine-init images/base/build-rootfs.sh .ci/run
	@$(STAGE) yamllint yamllint -s .
	@$(STAGE) ansible-lint ansible-lint --offline -q
	@$(STAGE) role-docs $(PY) scripts/role_docs.py --check

collection: deps
	@scripts/stage-collection.sh >/dev/null

sanity: collection
	@$(STAGE) sanity bash -c '$(ANSIBLE_TEST) sanity --venv --python 3.11 --color no'

units: collection
	@$(STAGE) units-ansible bash -c '$(ANSIBLE_TEST) units --venv --python 3.11 --color no'
	@WABIZ_UNITS_NO_SKIP=1 PYTHONPATH=$(CURDIR)/.build/link $(STAGE) units-venv $(PYTEST) tests/unit -q -rs

# The tarball installs offline into an empty path and ansible-doc lists its modules.
package: deps
	@$(STAGE) package $(PYTEST) tests/collection -q

dbservers: deps
	@$(PY) -m tests.support.dbservers start

dbservers-stop:
	@$(PY) -m tests.support.dbservers stop

integration: dbservers
	@$(MAKE) --no-print-directory integration-standin integration-modules integration-cluster-modules properties \
	  conformance

# Stand-in cluster tests: processes on loopback against real MariaDB and PostgreSQL, then the
# images under plain compose.
integration-standin: dbservers
	@$(STAGE) standin $(PYTEST) tests/standin -q

# Module integration targets (ansible-test, four steps each) against real servers.
integration-modules: collection dbservers
	@$(PY) -m tests.integration.write_config $(COLL)/tests/integration/integration_config.yml
	@$(STAGE) modules bash -c '$(ANSIBLE_TEST) integration --local --python 3.11 --color no'

# The cluster modules against a running stand-in cluster (processes on loopback, both engines).
integration-cluster-modules: dbservers
	@$(STAGE) cluster-modules $(PYTEST) tests/cluster_modules -q

# Property-based tests (hypothesis): bad and borderline values for every option of every module and
# every preflight variable, the modules run for real (HYPOTHESIS_PROFILE=thorough for 10x examples).
properties: dbservers
	@$(STAGE) properties $(PYTEST) tests/properties -q

# Meta's own compose files, unchanged (WABIZ_META_SETUP_SCRIPTS, else ../shared/reference/meta-setup-scripts,
# else /work/shared: missing files fail the stage), run the stand-in images: multiconnect-compose.yml
# (mysql:8.0.33), postgres/ (postgres:13.8) and prod-multiconnect-compose.yml on two machines; the API
# answers as the contract says, and TLS to the database (WA_DB_SSL_*) is verified. About 1.5 minutes.
conformance: images
	@$(STAGE) conformance $(PYTEST) tests/conformance -q

# The infrastructure roles on two testbeds (database, NFS, engine, cron, firewall).
roles: images
	@$(STAGE) roles $(PYTEST) tests/roles -q

# Molecule scenarios with the failover drills (extensions/molecule).
MOLECULE_SCENARIOS ?= dev ha_mysql ha_postgres
molecule: images
	@for s in $(MOLECULE_SCENARIOS); do $(STAGE) molecule-$$s molecule test -s $$s || exit 1; done

# Everything make test runs, plus the slow molecule scenarios.
test-full: test
	@$(MAKE) --no-print-directory molecule MOLECULE_SCENARIOS=upgrade

# Benchmarks (bench/): failover downtime with tuned and default timers, planned switchover, deploy
# cost, health-check latency, message GC. JSON and PNG files go to .build/bench (WABIZ_BENCH_DIR).
# Not part of make test; bench-quick (one round of each, small sizes) is, so they keep working.
bench: images dbservers
	@$(STAGE) bench $(PY) -m bench $(BENCH_ARGS)

bench-quick: images dbservers
	@$(STAGE) bench-logic $(PYTEST) tests/bench -q
	@WABIZ_BENCH_DIR=$(CURDIR)/.build/bench-quick $(STAGE) bench-quick $(PY) -m bench --quick

# The fault campaign (bench/faults.py): CHAOS_ROUNDS rounds of partitions, database restarts and
# stalls, NFS stops, kills, pauses and two faults at once on a fresh testbed, judged by an
# independent checker (bench/checker.py); faults.json and faults.png in .build/bench. About 70 s
# per 5 rounds. One round of each kind runs in bench-quick.
CHAOS_ROUNDS ?= 200
chaos: images
	@$(STAGE) chaos $(PY) -m bench.faults --rounds $(CHAOS_ROUNDS) $(CHAOS_ARGS)

testbed-smoke: images
	@$(STAGE) testbed-smoke $(PYTEST) tests/testbed -q

testbed-down:
	@$(PY) testbed/testbed.py down --all

clean: dbservers-stop testbed-down
	rm -rf .build

lock:
	$(PY) -m pip freeze --exclude-editable | sed '1i # Generated from requirements/dev.in with pip freeze (Python 3.11). Regenerate: make lock' >requirements/dev.txt
