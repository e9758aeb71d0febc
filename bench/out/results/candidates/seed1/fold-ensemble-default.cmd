python bench/mias_ensemble.py --members default-again --across-seeds --name fold-ensemble-default
