python bench/rsna_scratch_cost.py --root ../shared/data/rsna-640
