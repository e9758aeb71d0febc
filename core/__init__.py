"""Mammogram classification and malignancy localisation: the library behind the app and CLI.

The package is layered; a module imports only from its own layer or below, and
``tests/test_layers.py`` holds it to that (import-linter contracts in ``pyproject.toml``).
Top to bottom:

* ``cli`` — ``python -m core``: argument parsing, one JSON document out, exit 2 on bad input;
* ``experiments`` — what spans training and evaluation: cross-validation, sweeps, the job
  queue, the Data page's preview of what training will see;
* ``train`` | ``evaluate`` — fitting a model into a run folder | scoring, heatmaps, reports;
* ``runs`` — run folders and manifests, the training config and presets, the training plan
  and progress events, the one gate for the files a run serves;
* ``models`` | ``render`` | ``metrics`` — Keras encoders and the model kinds | overlays,
  charts, the palette | scores and the registry of headline figures;
* ``prep`` — from a film to a model input: cropping, splits, augmentation, arrays;
* ``data`` — dataset loaders turning annotations into film records;
* ``films`` | ``geometry`` | ``backend`` — reading pixels | the ``Transform``, the only
  coordinate arithmetic, and the one lesion shape | the only backend-specific code;
* ``atomic``, ``settings``, ``errors`` — safe writes, every ``MAMMO_*`` variable and root
  folder, the error types.

Nothing here imports Streamlit or ``ui``; the app only calls into it.
"""

__version__ = "0.4.0"
