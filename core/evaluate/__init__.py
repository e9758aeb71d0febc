"""Metrics, heatmaps and reports: how good a model is and where it looks."""
