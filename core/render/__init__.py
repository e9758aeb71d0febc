"""What a person sees: heatmap overlays on films, the colour palette, and plotly charts of
evaluation results. Pure functions of arrays and result dictionaries: no model, no run folder."""
