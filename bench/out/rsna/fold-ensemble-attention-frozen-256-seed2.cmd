python bench/rsna_ensemble.py --stem attention-frozen-256
