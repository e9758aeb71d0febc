python bench/mias_ensemble.py --members both-breasts --across-seeds --name fold-ensemble-both-breasts
