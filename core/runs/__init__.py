"""What every stage shares about a run: its folder and manifest, its training config and
presets, and reading its progress log. Training writes runs, evaluation and the app read them."""
