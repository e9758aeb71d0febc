python bench/mias_ensemble.py --members rsna-encoder effnet-lite0 both-breasts --name ensemble-abc
