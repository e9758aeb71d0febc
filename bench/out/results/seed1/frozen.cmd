python -m core cv --dataset mias --root ../shared/data/mias --folds 5 --seed 1 --json
