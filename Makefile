# Two commands on a fresh machine (Python 3.11, pip, gcc, make):
#   make demo   install, fit MLPerf's trained ResNet-8 into 64 KB with tfprune.compress, show before and after
#   make test   install (with the Cortex-M compiler) and run the tests, unit and integration
#   make unit   the unit tests only (no real data, toolchain or emulator; under two minutes)
# Each takes STACK=tf2.21 for the current stack (Python 3.12, TensorFlow 2.21 with tf-keras) in
# its own virtual environment, .venv-tf2.21; the default is the pinned stack, TensorFlow 2.15
# (README, "Compatibility"; the versions are in constraints/).
STACK  ?= tf2.15
ifeq ($(STACK),tf2.15)
PYTHON ?= python3.11
VENV   := .venv
EXTRAS := test,rl
else
PYTHON ?= python3.12
VENV   := .venv-$(STACK)
EXTRAS := test
endif
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ARGS ?=

.PHONY: demo test unit bench-quick install arm-toolchain clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/$(STACK).txt
	@test -f constraints/$(STACK).txt || { echo "unknown STACK=$(STACK): choose tf2.15 or tf2.21"; exit 1; }
	$(PYTHON) -c "" 2>/dev/null || { echo "needs $(PYTHON) on PATH (or make PYTHON=/path/to/python)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints/$(STACK).txt -e '.[$(EXTRAS)]'
	touch $@

# Debian's Cortex-M cross compiler (it compiles the generated model arrays and gives their flash
# size) and QEMU (it runs the firmware on an emulated Cortex-M4, tfprune.emulate).
arm-toolchain:
	@{ command -v arm-none-eabi-g++ && command -v qemu-system-arm; } >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) apt-get install -y -q gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm; }

demo: install arm-toolchain
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python examples/compress_demo.py --out demo_out --force $(DEMO_ARGS)

test: install arm-toolchain
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q

unit: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -m "not integration"

# The benchmark's CI tier into a scratch folder (tools/bench --help for the others).
bench-quick: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python tools/bench --tier quick --results /tmp/tfprune-bench-quick \
	  --markdown /tmp/tfprune-bench-quick/BENCHMARKS.md

clean:
	rm -rf demo_out .pytest_cache
