"""What spans training and evaluation: cross-validation, sweeps, the job queue, and the Data
page's preview of what training will see."""
