# Two entry points (see README): `make demo` and `make test`. Both build .venv from scratch if needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/iqarena: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch 2.13.0 first: the CPU build; the open range in pyproject then installs nothing more.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/iqarena
	$(BIN)/iqarena demo

# training end to end on CPU in a few minutes: a synthetic FR set from the bundled references, two epochs of
# iqarena_fr, predictions and a submission zip (everything under out/train-demo)
train-demo: $(BIN)/iqarena
	$(BIN)/iqarena synth src/iqarena/sample/ref -o out/train-demo/data --label ms_ssim,fsimc --max-side 256 --levels 3 --overwrite
	$(BIN)/iqarena train configs/iqarena_fr_synth.toml --data.root out/train-demo/data --train.out out/train-demo/run \
		--train.epochs 2 --data.crop 128 --overwrite
	$(BIN)/iqarena predict out/train-demo/run/best.pt --dataset pipal --root out/train-demo/data \
		-o out/train-demo/output.txt --submission out/train-demo/submission.zip --overwrite
	$(BIN)/iqarena submission check out/train-demo/submission.zip

test: $(BIN)/iqarena
	$(BIN)/python -m pytest -q

.PHONY: demo test train-demo
