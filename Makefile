# Two commands on a fresh clone (see README.md):
#   make demo   set up .venv once, then run the headline demo
#   make test   set up .venv once, then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: setup demo test benchmark results figures notebooks clean-cache

setup: $(STAMP)

# The stamp's name carries a checksum of requirements.txt: a changed pin reinstalls, a second
# `make` does nothing.
$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@# A .pth file puts this repository on the venv's path: `import common` works from notebooks
	@# and scripts in any folder, without installing the project as a package.
	$(PY) -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'everything_is_a_mapping.pth').write_text(str(pathlib.Path.cwd()) + '\\n')"
	@rm -f $(VENV)/.installed-* && touch $@

# The headline demo: Prototypical Networks (PyTorch) on Omniglot, a short schedule (20-way training,
# 600 episodes), tested on the 600 fixed 5-way 1-shot episodes. Run again, it resumes its checkpoint.
demo: setup
	$(PY) -m tools.viewer --dataset omniglot --way 5 --shot 1 --query 5 --out episode.png
	$(PY) -m chapters.metric.protonet --framework torch --way 20 --shot 1 --query 5 \
	    --test-way 5 --test-shot 1 --test-query 15 --episodes 600 --eval-every 200 --val-episodes 50 --out runs/demo

test: setup
	$(PY) -m pytest

benchmark: setup
	$(PY) -m tools.benchmark_sampler

# The whole table, and each chapter's own rows inside its text (section "Results").
results: setup
	$(PY) -m common.results table --out results/README.md
	$(PY) -m common.results table results/metric --into chapters/metric/README.md
	$(PY) -m common.results table results/optimization --into chapters/optimization/README.md
	$(PY) -m common.results table results/applications --into chapters/applications/README.md
	$(PY) -m common.results table results/model_based --into chapters/model_based/README.md

# Every chapter's figures (chapters/<part>/figures.py -> chapters/<part>/figures/*.png, each with
# the data it was drawn from in a .json beside it), from results files and small deterministic runs.
figures: setup
	$(PY) -m chapters.figures

# Run every notebook in its fast mode and store it with its outputs, as GitHub shows it.
notebooks: setup
	$(PY) -m common.notebooks

clean-cache:
	rm -rf data/cache .cache
