# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/capcache demo
	$(BIN)/capcache demo --preset demo-prefix-lm --out runs/demo-prefix-lm

# The HTML report test opens the page in Debian's headless Chromium; install it where we can.
browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium not installed: the browser check of the HTML report will be skipped"

test: setup browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs/demo runs/demo-prefix-lm .pytest_cache
