python bench/mias_ensemble.py --members rsna-encoder --across-seeds --name fold-ensemble-rsna-encoder
