"""Training: the data step, batches, patch pretraining, fitting either model kind, and the
progress log a run writes as it trains."""
