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

# ensembles end to end: a synthetic FR set, four metrics scored into the store, the mean of XGBoost, LightGBM and
# CatBoost bagged over 5 folds grouped by reference, predictions, and the fitted folder scoring a pair as a metric
ensemble-demo: $(BIN)/iqarena
	$(BIN)/iqarena synth src/iqarena/sample/ref -o out/ensemble-demo/data --label ms_ssim,fsimc --max-side 256 --levels 3 --overwrite
	$(BIN)/iqarena ensemble fit -d pipal --root out/ensemble-demo/data --metric psnr --metric ssim --metric gmsd --metric vsi \
		--model egb --param n_estimators=300 -o out/ensemble-demo/model --overwrite
	$(BIN)/iqarena ensemble predict out/ensemble-demo/model -d pipal --root out/ensemble-demo/data \
		-o out/ensemble-demo/output.txt --overwrite
	$(BIN)/iqarena score -m out/ensemble-demo/model --dist out/ensemble-demo/data/Train_Dis/A0001_00_02.bmp \
		--ref out/ensemble-demo/data/Train_Ref/A0001.bmp
	@echo "report: out/ensemble-demo/model/report.md"

# the challenge platform with a ready demo challenge (bundled sample images, synthetic labels) on http://127.0.0.1:8000/
challenge-demo: $(BIN)/iqarena
	$(BIN)/iqarena challenge demo --dir out/challenge-demo

test: $(BIN)/iqarena
	$(BIN)/python -m pytest -q

.PHONY: demo test train-demo challenge-demo ensemble-demo
