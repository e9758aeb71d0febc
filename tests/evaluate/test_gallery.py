"""The evaluation's films: each kept as a film view beside its PNG, and the PNG, the report's
picture and the Evaluate page's redraw at the default settings are one picture."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_predict import tiny_run

from core.evaluate.evaluate import evaluate_run
from core.evaluate.report import write_report
from core.render.film_view import DISPLAY_SIDE, FilmView, caption, overlay_picture
from core.runs.folder import Run


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return tiny_run(synthetic_root, tmp_path_factory.getbasetemp() / "runs")


def _decoded(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_report_pictures_are_the_views_redrawn(run: Run, tmp_path: Path) -> None:
    evaluation = evaluate_run(run, gallery_dir=tmp_path / "gallery")
    gallery = evaluation["gallery"]
    assert gallery
    files = write_report(evaluation, tmp_path / "report", gallery)
    page = Path(files["html"]).read_text()
    inlined = [base64.b64decode(uri) for uri in
               re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]
    for entry in gallery:
        view = FilmView.load(entry["view"])
        assert max(view.film.shape) <= DISPLAY_SIDE and view.heat.max() <= 1.0
        redrawn = overlay_picture(view, caption(entry["predicted"], entry["actual"]))
        np.testing.assert_array_equal(_decoded(Path(entry["overlay"]).read_bytes()), redrawn)
        assert any(np.array_equal(_decoded(png), redrawn) for png in inlined
                   if _decoded(png).shape == redrawn.shape), entry["film"]
    assert "where the model looked" in page
