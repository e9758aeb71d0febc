python -m core train --dataset rsna --root ../shared/data/rsna-640 --model attention --image-size 256 --patch-epochs 0 --fine-tune-layers 30 --json
python -m core evaluate models/20261207-134613-rsna-attention-lstm-mobilenet_v2-256 --json
python -m core encoder models/20261207-134613-rsna-attention-lstm-mobilenet_v2-256 --out rsna-mobilenet_v2.weights.h5 --json
