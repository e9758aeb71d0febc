python bench/mias_ensemble.py --members rsna-encoder effnet-lite0 --name ensemble
