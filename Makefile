# One command each: `make sync VIDEO=clip.mp4` (set up + run), `make test` (set up + all tests).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test sync test eval bench clean

$(BIN)/gestsync: pyproject.toml constraints.txt scripts/setup.sh scripts/lean_requirements.py
	scripts/setup.sh
	@touch $@

setup: $(BIN)/gestsync

setup-test:
	scripts/setup.sh --test

# The video's name reaches the shell through the environment, as typed: spaces, quotes
# and `$` in it stay (make would expand `$x`, and quotes would end the recipe's string).
sync: export GESTSYNC_VIDEO := $(value VIDEO)
sync: setup
	@test -n "$$GESTSYNC_VIDEO" || { echo "usage: make sync VIDEO=path/to/clip.mp4 [ARGS='--json']" >&2; exit 2; }
	$(BIN)/gestsync sync "$$GESTSYNC_VIDEO" $(ARGS)

test: setup-test
	$(BIN)/python -m pytest -q -rs $(ARGS)

eval: setup
	$(BIN)/gestsync eval --samples ../shared/samples $(ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_sync.py $(ARGS)

clean:
	rm -rf $(VENV) results build src/*.egg-info
