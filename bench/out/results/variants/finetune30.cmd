python -m core cv --dataset mias --root ../shared/data/mias --folds 5 --patch-epochs 0 --fine-tune-layers 30 --fine-tune-epochs 10 --json
