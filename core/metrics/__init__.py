"""How good a model is: the scores (classification, ranking, localisation summaries) and the
one registry of headline figures that reports, cross-validation, sweeps, the runs table and
the pages read. Pure functions of labels and probabilities, below training and evaluation so
both can use them."""
