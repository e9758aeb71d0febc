"""Preprocessing, splits and augmentation: everything between a read film and a model input."""
