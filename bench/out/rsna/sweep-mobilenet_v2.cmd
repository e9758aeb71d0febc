python bench/rsna_sweep.py --root ../shared/data/rsna-640 --weights ../shared/weights
