python -m core cv --dataset rsna --root ../shared/data/rsna-640 --folds 5 --seed 2 --model attention --image-size 256 --patch-epochs 0 --fine-tune-layers 0 --json
