python -m core cv --dataset mias --root ../shared/data/mias --folds 5 --seed 2 --patch-epochs 0 --fine-tune-layers 0 --json
