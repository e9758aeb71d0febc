python -m core cv --dataset mias --root ../shared/data/mias --folds 5 --patch-epochs 10 --patch-labels class --fine-tune-layers 0 --json
