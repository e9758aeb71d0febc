"""Plotly figures for the app and the reports, built from plain results (no Streamlit here,
so they can be tested and reused outside the app).

Colours follow the report's colour-blind-safe palette; heat scales are Viridis, like the
heatmap overlays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.render.palette import PALETTE


def probability_bars(probabilities: Mapping[str, float], title: str = "") -> go.Figure:
    """One horizontal bar per class, the most likely on top and highlighted."""
    ordered = sorted(probabilities.items(), key=lambda item: item[1])
    best = ordered[-1][0] if ordered else None
    figure = go.Figure(go.Bar(
        x=[p for _, p in ordered], y=[name for name, _ in ordered], orientation="h",
        marker_color=[PALETTE[2] if name == best else PALETTE[0] for name, _ in ordered],
        text=[f"{p:.2f}" for _, p in ordered], textposition="outside",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(title=title or None, xaxis={"range": [0, 1.1], "title": "probability"},
                         height=60 + 28 * len(ordered), margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return figure


#: Line dashes and marker symbols cycled with the colours, so that curves lying on top of
#: each other (a tiny test split gives identical ROC curves) can still be told apart.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star", "pentagon")


def _style(index: int) -> dict[str, Any]:
    """Colour, dash and marker of the ``index``-th line; no two of the first 48 share all."""
    return {"line": {"color": PALETTE[index % len(PALETTE)],
                     "dash": DASHES[index % len(DASHES)], "width": 2},
            "marker": {"symbol": SYMBOLS[index % len(SYMBOLS)], "size": 7}}


def confusion_heatmap(cm: Sequence[Sequence[int]], labels: Sequence[str],
                      across: str = "predicted") -> go.Figure:
    """Actual classes down, predicted across (``across`` titles that axis: what the columns
    are, e.g. the calls at one threshold); each cell coloured by its share of its row (a rare
    class's misses show as clearly as a common one's) and labelled with its count."""
    counts = np.asarray(cm, dtype=np.int64)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"a confusion matrix of shape {counts.shape} for {len(labels)} "
                         "classes")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    figure = go.Figure(go.Heatmap(
        z=shares, x=list(labels), y=list(labels), text=counts, texttemplate="%{text}",
        colorscale="Viridis", zmin=0, zmax=1, colorbar={"title": {"text": "share of row"}},
        hovertemplate="actual %{y}, " + across + " %{x}: %{text} films (%{z:.0%} of the "
                      "row)<extra></extra>"))
    figure.update_layout(xaxis={"title": {"text": across}, "side": "bottom",
                                "type": "category"},
                         yaxis={"title": {"text": "actual"}, "autorange": "reversed",
                                "type": "category"},
                         height=160 + 40 * len(labels), margin={"t": 30})
    return figure


def pair_name(key: str, curve: Mapping[str, Any]) -> str:
    """A clinical pair's curve as a reader names it: ``abnormal vs normal``, or the pair's
    own classes as ``clinical_pairs`` stored them (``cancer vs no_cancer`` for RSNA,
    ``malignant vs benign`` for MIAS severities), so a screening run's curve is not called
    malignant vs benign."""
    if key == "abnormal":
        return "abnormal vs normal"
    return f"{curve.get('positive', 'malignant')} vs {curve.get('negative', 'benign')}"


def roc_curves(curves: Mapping[str, Any],
               aucs: Mapping[str, float | None] | None = None) -> go.Figure:
    """ROC curves of the clinical pairs (``abnormal``, ``malignant``) and of each class
    against the rest (``per_class``), as ``evaluate_run`` stores them, with the chance
    diagonal. A curve that is None (one kind of film only) is left out. The legend gives
    each curve's AUC: from ``aucs`` when given (keyed ``abnormal``, ``malignant`` or the
    class name; exact, from every film), else the area under the stored points."""
    aucs = aucs or {}
    lines = [(key, pair_name(key, curves[key]), curves[key]) for key in ("abnormal", "malignant")
             if curves.get(key)]
    lines += [(label, f"{label} vs rest", curve)
              for label, curve in (curves.get("per_class") or {}).items()]
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUC 0.50)",
                                  line={"color": "grey", "dash": "dot", "width": 1}))
    for index, (key, name, curve) in enumerate(line for line in lines if line[2]):
        auc = aucs.get(key)
        if auc is None:
            auc = float(np.trapezoid(curve["tpr"], curve["fpr"]))
        figure.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines+markers",
                                    name=f"{name} (AUC {auc:.2f})", **_style(index)))
    figure.update_layout(xaxis={"title": {"text": "false positive rate"}, "range": [0, 1]},
                         yaxis={"title": {"text": "true positive rate"}, "range": [0, 1.02]},
                         legend={"title": {"text": "curve"}}, height=480,
                         margin={"t": 30})
    return figure


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


#: What a person reads for each column Keras logs into ``history.csv`` (and the progress
#: log): the one place these names are translated. The attention model's outputs are named
#: ``class`` and ``attention``, so Keras prefixes their losses and metrics with them.
HISTORY_LABELS = {"loss": "loss", "class_loss": "classification loss",
                  "attention_loss": "attention loss", "accuracy": "accuracy",
                  "class_accuracy": "accuracy", "auc": "AUC"}
#: The two parts of a history column, as legends and menus name them.
TRAINING, VALIDATION = "training", "validation"


def history_label(column: str) -> str:
    """``val_class_loss`` -> "classification loss (validation)", ``loss`` -> "loss
    (training)"; a column this module does not know is shown as words."""
    split = VALIDATION if column.startswith("val_") else TRAINING
    base = column.removeprefix("val_")
    return f"{HISTORY_LABELS.get(base, base.replace('_', ' '))} ({split})"


def _metric_axis(bases: Sequence[str]) -> str:
    """The right panel's y-axis title: the one thing it shows, or "score" for several."""
    labels = {HISTORY_LABELS.get(base, base.replace("_", " ")) for base in bases}
    return labels.pop() if len(labels) == 1 else "score"


def training_curves(history: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Loss (left) and the other metrics (right) per epoch from a run's ``history.csv`` rows
    (``core.runs.folder.read_history``): training solid, validation dashed, one colour per
    metric, each named by ``history_label`` and each panel's y-axis titled. Epochs are
    counted across phases, with a line where a new phase begins."""
    names = list(dict.fromkeys(key for row in history for key in row
                               if key not in ("phase", "epoch")))
    bases = list(dict.fromkeys(name.removeprefix("val_") for name in names))
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "metrics"))
    steps = list(range(1, len(history) + 1))
    hover = [[row.get("phase"), row.get("epoch")] for row in history]
    for index, base in enumerate(bases):
        column = 1 if "loss" in base else 2
        colour = PALETTE[index % len(PALETTE)]
        for name, dash in ((base, "solid"), (f"val_{base}", "dash")):
            if name not in names:
                continue
            figure.add_trace(go.Scatter(
                x=steps, y=[_number(row.get(name)) for row in history], mode="lines+markers",
                name=history_label(name), legendgroup=base, customdata=hover,
                line={"color": colour, "dash": dash},
                hovertemplate="%{customdata[0]} epoch %{customdata[1]}: %{y:.3f}"
                              "<extra>%{fullData.name}</extra>"), row=1, col=column)
    for step, (before, after) in enumerate(pairwise(history), start=1):
        if before.get("phase") != after.get("phase"):
            figure.add_vline(x=step + 0.5, line={"color": "grey", "dash": "dot"},
                             annotation_text=str(after.get("phase")), row="all", col="all")
    figure.update_xaxes(title_text="epoch", tick0=1, dtick=max(1, len(history) // 10))
    figure.update_yaxes(title_text="loss (lower is better)", row=1, col=1)
    figure.update_yaxes(title_text=_metric_axis([b for b in bases if "loss" not in b]),
                        row=1, col=2)
    figure.update_layout(height=380, margin={"t": 40})
    return figure


def sensitivity_specificity(counts: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Per class, one against the rest (``metrics.per_class_counts``): sensitivity and
    specificity side by side. Undefined values (no film of the class) are not drawn as 0
    but left empty and marked n/a."""
    classes = list(counts)
    figure = go.Figure()
    for index, name in enumerate(("sensitivity", "specificity")):
        values = [_number(counts[label].get(name)) for label in classes]
        figure.add_trace(go.Bar(
            x=classes, y=values, name=name, marker_color=PALETTE[index],
            marker_pattern_shape="" if index == 0 else "/",
            text=["n/a" if v is None else f"{v:.2f}" for v in values], textposition="outside"))
    figure.update_layout(barmode="group", yaxis={"range": [0, 1.15], "title": {"text": "rate"}},
                         xaxis={"title": {"text": "class (one vs rest)"}}, height=380,
                         margin={"t": 30})
    return figure


def runs_comparison(rows: Sequence[Mapping[str, Any]], metric: str,
                    label: str | None = None) -> go.Figure:
    """One bar per run for one figure of ``runs_table`` rows (e.g. ``val_macro_f1``), its
    axis titled ``label`` (what a person reads; the column name by default); runs without
    it are listed with an empty bar marked n/a, never as 0. Runs trained on synthetic films
    say so under their bar."""
    label = metric if label is None else label
    names = [str(row.get("name")) + (" (SYNTHETIC)" if row.get("synthetic") else "")
             for row in rows]
    values = [_number(row.get(metric)) for row in rows]
    figure = go.Figure(go.Bar(
        x=names, y=values, marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(rows))],
        text=["n/a" if v is None else f"{v:.3f}" for v in values], textposition="outside",
        hovertemplate="%{x}<br>" + label + ": %{y:.4f}<extra></extra>"))
    top = max([v for v in values if v is not None] + [1.0])
    figure.update_layout(yaxis={"title": {"text": label}, "range": [0, top * 1.15]},
                         xaxis={"title": {"text": "run"}, "type": "category"}, height=400,
                         margin={"t": 30})
    return figure


def compared_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]],
                    metric: str) -> go.Figure:
    """One ``history.csv`` column (e.g. ``val_loss``) of several runs overlaid, epochs
    counted across phases; each run its own colour, dash and marker; the y-axis titled by
    ``history_label``."""
    figure = go.Figure()
    for index, (name, history) in enumerate(histories.items()):
        if not any(metric in row for row in history):
            continue
        figure.add_trace(go.Scatter(
            x=list(range(1, len(history) + 1)), y=[_number(row.get(metric)) for row in history],
            mode="lines+markers", name=name, **_style(index)))
    longest = max((len(history) for history in histories.values()), default=0)
    figure.update_layout(xaxis={"title": {"text": "epoch"}, "tick0": 1,
                                "dtick": max(1, longest // 10)},
                         yaxis={"title": {"text": history_label(metric)}}, height=380,
                         margin={"t": 30})
    return figure


def threshold_roc(roc: Mapping[str, Sequence[Any]], point: Mapping[str, Any],
                  presets: Sequence[Mapping[str, Any]] = (), title: str = "") -> go.Figure:
    """The ROC curve an evaluation's ``operating_points`` keeps, with where the chosen
    threshold puts the model (``point``: ``fpr``, ``tpr``, ``threshold``) and where each
    preset does, each its own marker, beside the chance diagonal."""
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                  line={"color": "grey", "dash": "dot", "width": 1}))
    figure.add_trace(go.Scatter(x=list(roc["fpr"]), y=list(roc["tpr"]), mode="lines",
                                name="ROC curve", line={"color": PALETTE[0], "width": 2}))
    for index, preset in enumerate(presets, start=1):
        style = _style(index)
        figure.add_trace(go.Scatter(
            x=[_number(preset.get("fpr"))], y=[_number(preset.get("tpr"))], mode="markers",
            name=f"{preset['label']} ({_threshold_text(preset.get('threshold'))})",
            marker={**style["marker"], "color": style["line"]["color"], "size": 10,
                    "line": {"color": "white", "width": 1}}))
    figure.add_trace(go.Scatter(
        x=[_number(point.get("fpr"))], y=[_number(point.get("tpr"))], mode="markers",
        name=f"this threshold ({_threshold_text(point.get('threshold'))})",
        marker={"color": "black", "size": 16, "symbol": "circle-open", "line": {"width": 3}}))
    figure.update_layout(title=title or None,
                         xaxis={"title": {"text": "false positive rate (1 - specificity)"},
                                "range": [-0.02, 1.02]},
                         yaxis={"title": {"text": "true positive rate (sensitivity)"},
                                "range": [-0.02, 1.04]},
                         legend={"title": {"text": "point"}, "orientation": "h",
                                 "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
                         height=560, margin={"t": 40 if title else 30})
    return figure


def _threshold_text(threshold: Any) -> str:
    """Which films a threshold calls positive; None: above every score, none of them."""
    value = _number(threshold)
    return "above every score" if value is None else f"score ≥ {value:.3f}"


def reliability_diagram(bins: Sequence[Mapping[str, Any]], score: str,
                        positive: str) -> go.Figure:
    """Each non-empty bin of ``calibration``'s reliability bins as a point: its films' mean
    ``score`` across, the share of them that are ``positive`` up, its size growing with
    its films; the diagonal is a perfectly calibrated score. Points below the diagonal are
    over-confident about ``positive``."""
    filled = [b for b in bins if b.get("count")]
    counts = [int(b["count"]) for b in filled]
    largest = max(counts, default=1)
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines",
                                  name="perfectly calibrated",
                                  line={"color": "grey", "dash": "dot", "width": 1}))
    figure.add_trace(go.Scatter(
        x=[b["mean_predicted"] for b in filled], y=[b["observed"] for b in filled],
        mode="lines+markers", name="this model (one point per bin)",
        line={"color": PALETTE[0], "width": 2},
        marker={"size": [8 + 16 * (count / largest) ** 0.5 for count in counts],
                "color": PALETTE[0]},
        customdata=[[b["low"], b["high"], b["count"]] for b in filled],
        hovertemplate="scores %{customdata[0]:.1f} to %{customdata[1]:.1f}: %{customdata[2]} "
                      "films, mean score %{x:.2f}, " + positive + " %{y:.2f}<extra></extra>"))
    figure.update_layout(xaxis={"title": {"text": f"mean score in the bin ({score})"},
                                "range": [-0.02, 1.02]},
                         yaxis={"title": {"text": f"share of the bin's films that are "
                                                  f"{positive}"}, "range": [-0.02, 1.04]},
                         legend={"title": {"text": "curve"}}, height=420, margin={"t": 30})
    return figure
