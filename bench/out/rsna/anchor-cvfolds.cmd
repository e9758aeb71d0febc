python bench/rsna_anchor.py --root ../shared/data/rsna-640 --weights ../shared/weights --cv-folds
