python -m core cv --dataset mias --root ../shared/data/mias --folds 5 --seed 2 --patch-epochs 10 --patch-labels lesion --fine-tune-layers 10 --fine-tune-epochs 8 --json
