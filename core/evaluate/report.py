"""An evaluation as files a stakeholder can open: JSON, CSV tables, PNG plots and one
self-contained HTML page (images inlined, no network, no plotting library).

The plots are drawn with Pillow: matplotlib is not a dependency and plotly's static export
needs a browser engine that is not available offline. The tables are the first paper's
classification report and the second paper's one-vs-rest counts, rebuilt from the
evaluation's confusion matrix, so page, CSV and JSON can never disagree.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from core.atomic import atomic_path, make_folder
from core.errors import BadConfigError
from core.metrics.headline import HEADLINE
from core.metrics.per_class import COLUMN_LABELS, rows_with_f1_intervals
from core.metrics.scores import classification_report, per_class_counts, report_rows
from core.render.charts import pair_name
from core.render.film_view import HEAT_MEANING, HIGH, LOW
from core.render.palette import PALETTE

PLOT_SIDE = 480


def write_report(evaluation: dict[str, Any], out_dir: str | Path,
                 gallery: Sequence[dict[str, Any]] = ()) -> dict[str, str]:
    """Write ``evaluation.json``, ``classification_report.csv``, ``per_class_counts.csv``,
    ``confusion_matrix.csv``, ``test_films.csv`` (``films_table``; not for an older
    evaluation without films' probabilities), ``confusion_matrix.png``, ``roc.png`` and
    ``report.html`` into ``out_dir``; returns their paths by name.

    ``gallery``: films to show, each ``{"film", "actual", "predicted", "overlay": PNG path}``
    (``evaluate_run(..., gallery_dir=...)`` makes them, with ``film_view.overlay_picture``:
    the picture the Evaluate page draws and offers for download at its default settings).
    """
    labels = list(evaluation["labels"])
    cm = np.asarray(evaluation["confusion_matrix"], dtype=np.int64)
    if cm.shape != (len(labels), len(labels)):
        raise BadConfigError(f"confusion matrix of shape {cm.shape} for {len(labels)} classes")
    out = make_folder(Path(out_dir), "report folder")
    rows = rows_with_f1_intervals(report_rows(classification_report(*_labels_of(cm), labels)),
                                  evaluation)
    counts = [{"class": name, **row} for name, row in per_class_counts(cm, labels).items()]
    tables = {"classification_report": pd.DataFrame(rows).rename(columns=COLUMN_LABELS),
              "per_class_counts": pd.DataFrame(counts),
              "confusion_matrix": pd.DataFrame(cm, index=pd.Index(labels, name="actual"),
                                               columns=labels)}
    films = films_table(evaluation)
    if films is not None:
        tables["test_films"] = films
    plots = {"confusion_matrix": confusion_matrix_plot(cm, labels),
             "roc": roc_plot(evaluation.get("curves") or {})}

    files: dict[str, Path] = {}
    for name, table in tables.items():
        files[f"{name}.csv"] = out / f"{name}.csv"
        _write_bytes(files[f"{name}.csv"],
                     table.to_csv(index=name == "confusion_matrix").encode())
    encoded = {}
    for name, image in plots.items():
        files[f"{name}.png"] = out / f"{name}.png"
        encoded[name] = _png_bytes(image)
        _write_bytes(files[f"{name}.png"], encoded[name])
    files["html"] = out / "report.html"
    _write_bytes(files["html"], _page(evaluation, tables, encoded, gallery).encode())
    # Last: a saved evaluation is read back as a finished report (``saved_evaluation``), so
    # it must not exist until every other file has been written.
    files["evaluation"] = out / "evaluation.json"
    _write_bytes(files["evaluation"], json.dumps(evaluation, indent=2).encode())
    return {name: str(path) for name, path in files.items()}


#: The film table's columns, in order, for readers of ``test_films.csv`` and the page.
FILM_COLUMNS = ("film", "patient", "actual", "predicted", "right", "p_predicted", "p_actual")


def films_table(evaluation: dict[str, Any]) -> pd.DataFrame | None:
    """One row per test film: its class, the model's, whether they agree, the probability
    the model gave its answer and the probability it gave the truth, then every class's
    probability (``p_<class>``); the most confidently wrong films first (lowest
    ``p_actual``), since those are the ones a reader looks at. None for an evaluation
    written before films kept their probabilities."""
    films = evaluation.get("films") or []
    if not films or not all("probabilities" in film for film in films):
        return None
    labels = list(evaluation["labels"])
    rows = [{"film": film["film"], "patient": film.get("patient"), "actual": film["actual"],
             "predicted": film["predicted"], "right": film["actual"] == film["predicted"],
             "p_predicted": film["probabilities"][film["predicted"]],
             "p_actual": film["probabilities"][film["actual"]],
             **{f"p_{name}": film["probabilities"][name] for name in labels}}
            for film in films]
    table = pd.DataFrame(rows, columns=[*FILM_COLUMNS, *(f"p_{name}" for name in labels)])
    return table.sort_values(["p_actual", "film"], kind="stable").reset_index(drop=True)


def _labels_of(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (actual, predicted) pair per film counted in the matrix."""
    actual, predicted = np.indices(cm.shape)
    return np.repeat(actual.ravel(), cm.ravel()), np.repeat(predicted.ravel(), cm.ravel())


# -- plots ----------------------------------------------------------------------------------
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def confusion_matrix_plot(cm: np.ndarray, labels: Sequence[str]) -> Image.Image:
    """Rows actual, columns predicted; each cell shaded by its share of the row (so a rare
    class's misses show as clearly as a common one's) and labelled with its count."""
    n = len(labels)
    margin, cell = 90, max(24, (PLOT_SIDE - 90) // max(n, 1))
    image = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw, font = ImageDraw.Draw(image), _font(12)
    totals = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
    for i in range(n):
        for j in range(n):
            x, y = margin + j * cell, margin + i * cell
            level = round(255 - 200 * float(shares[i, j]))
            draw.rectangle((x, y, x + cell, y + cell), fill=(level, level, 255),
                           outline="grey")
            draw.text((x + cell / 2, y + cell / 2), str(cm[i, j]), font=font, anchor="mm",
                      fill="black" if shares[i, j] < 0.6 else "white")
        draw.text((margin - 6, margin + i * cell + cell / 2), labels[i], font=font,
                  anchor="rm", fill="black")
        draw.text((margin + i * cell + cell / 2, margin - 6), labels[i][:6], font=font,
                  anchor="mb", fill="black")
    draw.text((4, 4), "actual (rows) vs predicted (columns)", font=font, fill="black")
    return image


def roc_plot(curves: dict[str, Any]) -> Image.Image:
    """ROC curves of the clinical pairs and each class against the rest, one colour each,
    with the chance diagonal; a curve that is None (one kind of film only) is left out."""
    lines = [(pair_name(key, curves[key]), curves[key]) for key in ("abnormal", "malignant")
             if curves.get(key)]
    lines += [(f"{name} vs rest", curve)
              for name, curve in (curves.get("per_class") or {}).items() if curve]
    margin, top, side = 50, 26, PLOT_SIDE - 76
    image = Image.new("RGB", (PLOT_SIDE + 200, PLOT_SIDE), "white")
    draw, font = ImageDraw.Draw(image), _font(12)

    def point(fpr: float, tpr: float) -> tuple[float, float]:
        return margin + fpr * side, top + (1.0 - tpr) * side

    draw.rectangle((*point(0, 1), *point(1, 0)), outline="black")
    draw.line((*point(0, 0), *point(1, 1)), fill="grey", width=1)
    for tick in (0.0, 0.5, 1.0):
        draw.text(point(tick, 0), f"{tick:.1f}", font=font, anchor="mt", fill="black")
        draw.text((margin - 4, point(0, tick)[1]), f"{tick:.1f}", font=font, anchor="rm",
                  fill="black")
    draw.text((margin + side / 2, PLOT_SIDE - 14), "false positive rate", font=font,
              anchor="mm", fill="black")
    draw.text((4, 4), "true positive rate", font=font, fill="black")
    if not lines:
        draw.text(point(0.5, 0.5), "no ROC curve: one kind of film only", font=font,
                  anchor="mm", fill="black")
    for index, (name, curve) in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        draw.line([point(f, t) for f, t in zip(curve["fpr"], curve["tpr"])], fill=colour,
                  width=2)
        draw.text((margin + side + 14, 20 + 18 * index), name, font=font, fill=colour)
    return image


# -- files ----------------------------------------------------------------------------------
def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_bytes(path: Path, content: bytes) -> None:
    """Atomically; a full disk or a read-only folder is a ``WriteError`` naming ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _headline_rows(evaluation: dict[str, Any]) -> list[str]:
    """The number of films, then every headline figure (the registry's label, order and
    trivial baseline) beside its 95% interval and what a model that learnt nothing scores
    on the same films, so a weak model fools nobody: always the training majority class
    for the label figures, 0.5 for AUCs, a random point in the breast for the pointing
    game. A figure that does not apply to this dataset (None: a two-class AUC on seven
    classes, a pointing game without located lesions) is left out, as on the Evaluate page."""
    escape = html.escape
    intervals = evaluation.get("confidence_intervals") or {}
    majority = (evaluation.get("baselines") or {}).get("majority", {}).get("class", "majority")
    rows = [(f"<tr><th>figure</th><th>model</th><th>always {escape(str(majority))} / "
             "chance</th></tr>"),
            f"<tr><th>n</th><td>{_figure(evaluation.get('n'))}</td><td>n/a</td></tr>"]
    for metric in HEADLINE:
        if evaluation.get(metric.key) is None:
            continue
        ci = intervals.get(metric.key)
        band = (f" (95% CI {_figure(ci['low'])} to {_figure(ci['high'])})"
                if ci and ci.get("low") is not None else "")
        rows.append(f"<tr><th>{escape(metric.label)}</th>"
                    f"<td>{_figure(evaluation.get(metric.key))}{escape(band)}</td>"
                    f"<td>{_figure(metric.trivial_baseline(evaluation))}</td></tr>")
    return rows


def _page(evaluation: dict[str, Any], tables: dict[str, pd.DataFrame],
          plots: dict[str, bytes], gallery: Sequence[dict[str, Any]]) -> str:
    escape = html.escape
    rows = _headline_rows(evaluation)
    if evaluation.get("malignancy_score"):
        rows.append(f"<tr><th>malignancy score</th><td colspan='2'>"
                    f"{escape(str(evaluation['malignancy_score']))}</td></tr>")
    patients = evaluation.get("patient_level")
    if patients:
        rows.append(f"<tr><th>patients</th><td colspan='2'>{patients['n_patients']} "
                    f"({patients['n_positive']} positive), each scored by the "
                    f"{escape(str(patients['score']))}</td></tr>")
    warning = ("<p class='warn'>SYNTHETIC films: these figures say nothing about real "
               "mammograms.</p>" if evaluation.get("synthetic") else "")
    cards = []
    for entry in gallery:
        try:
            png = Path(entry["overlay"]).read_bytes()
        except OSError as error:
            raise BadConfigError(f"{entry['overlay']}: cannot read the overlay "
                                 f"({error.strerror})") from None
        mark = "right" if entry["predicted"] == entry["actual"] else "wrong"
        cards.append(f"<figure class='{mark}'><img src='{_data_uri(png)}' alt=''>"
                     f"<figcaption>{escape(str(entry['film']))}: predicted "
                     f"{escape(entry['predicted'])}, actual {escape(entry['actual'])}"
                     "</figcaption></figure>")
    source = evaluation.get("source") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
.warn {{ color: #b00; font-weight: bold; }} .grid {{ display: flex; flex-wrap: wrap; }}
figure {{ width: 300px; margin: 6px; }} figure img {{ width: 100%; }}
figure.wrong figcaption {{ color: #b00; }}
</style></head><body>
<h1>Evaluation report</h1>
<p>{escape(str(source.get('kind', '')))} of {escape(str(source.get('dataset', '')))}
({escape(str(source.get('root', '')))}); heatmaps: {escape(str(evaluation.get('heatmap')))}</p>
{warning}
<h2>Headline figures</h2><table>{''.join(rows)}</table>
<h2>Classification report</h2>{tables['classification_report'].to_html(
    index=False, float_format='%.3f', na_rep='n/a')}
<p>F1 intervals: 95% bootstrap over patients (the average rows: those of accuracy, macro F1
and weighted F1).</p>
<h2>Per class, one against the rest</h2>{tables['per_class_counts'].to_html(
    index=False, float_format='%.3f', na_rep='n/a')}
<h2>Confusion matrix</h2>{tables['confusion_matrix'].to_html()}
<img src="{_data_uri(plots['confusion_matrix'])}" alt="confusion matrix">
<h2>ROC curves</h2><img src="{_data_uri(plots['roc'])}" alt="ROC curves">
<h2>Films: predicted vs actual, with heatmaps</h2>
<p>Above each film what the model predicted and what it is; below it the colour bar
({escape(HEAT_MEANING)}: {LOW} to {HIGH}). The heat is drawn only where the model looked, so the
film shows through everywhere else; red circles mark the annotated lesions.</p>
<div class="grid">{''.join(cards)}</div>
</body></html>
"""
