# banet-vo: the README's commands. `make setup` is idempotent (stamp files track the requirement files and
# the torch build asked for).
PYTHON     ?= python3.11
VENV       ?= .venv
# torch's CPU build: PyPI's torch 2.13.0 for Linux is the CUDA build (GBs of nvidia-* wheels); PyTorch's CPU
# index holds 2.13.0+cpu, which pip prefers (a local version sorts after). Users with CUDA pick another
# build here, e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= -r requirements/torch-cpu.txt
PY         := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test workers (pytest-xdist): the tests run torch at one thread and mostly use one core each, so two
# workers on 2 cores take ~0.55x the time of one. PYTEST_WORKERS=0 runs the tests in this process.
PYTEST_WORKERS ?= 2
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist worksteal
# Keep DDS discovery on this machine: tests and the demo never talk to the network.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp

# One stamp per TORCH_SPEC: asking for another build (CPU → cu128) re-runs the torch step, which replaces
# the installed torch even when the version number is the same (the builds differ only in their index).
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d' ' -f1)

.PHONY: setup test test-fast lint format bench demo clean
setup: $(VENV)/.installed

$(TORCH_STAMP): requirements/torch-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if ls $(VENV)/.torch-* >/dev/null 2>&1; then \
		$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps $(TORCH_SPEC); fi
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(TORCH_SPEC)
	# torch's own dependencies from the usual indexes: only torch needs TORCH_SPEC's index
	$(PY) -m pip install -q --disable-pip-version-check torch
	rm -f $(VENV)/.torch-*
	touch $@

$(VENV)/.installed: $(TORCH_STAMP) requirements/base.txt requirements/ros.txt \
		ros2_ws/src/banet_vo/setup.py ros2_ws/src/imatching_online/setup.py
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/base.txt -r requirements/ros.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		-e ros2_ws/src/banet_vo -e ros2_ws/src/imatching_online
	$(PY) -c "import torch, pypose, cv2, rclpy; print('banet-vo env ready: torch', torch.__version__, 'cuda', torch.cuda.is_available())"
	touch $@

# pytest exit 5 means it collected nothing: a broken configuration, never a pass.
test: setup
	@$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) -m benchmarks.run_all

# Renders a synthetic drive, bags it, runs banet_vo on it and prints ATE/RPE/abs rel; output in demo_out/.
demo: setup
	VENV=$(VENV) bash scripts/demo.sh

clean:
	rm -rf $(VENV) demo_out .pytest_cache
