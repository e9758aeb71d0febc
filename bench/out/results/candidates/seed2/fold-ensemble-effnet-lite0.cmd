python bench/mias_ensemble.py --members effnet-lite0 --across-seeds --name fold-ensemble-effnet-lite0
