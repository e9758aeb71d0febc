"""The Train page's form, drawn from the training settings' knobs (``core.runs.knobs``).

Every setting that applies to the chosen model gets the widget its declaration asks for
(menu, number box in its range, checkbox, text), with the label and help declared there,
starting at the preset's value. Nothing about a setting is written here, so the form, the
CLI and the config's own checks cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.runs.config import SETTINGS, TrainConfig
from core.runs.knobs import Setting

#: Form groups, in order: a heading (or none) and how many widgets share a row. Advanced
#: settings of every group are folded into one expander after them.
SECTIONS: dict[str, tuple[str, int]] = {
    "main": ("", 3),
    "encoder": (("**Training the encoder itself** (the default pretrains its top on lesion "
                 "and normal-tissue patches, then fine-tunes it on films)"), 5),
}
ADVANCED = "Advanced settings"


def form_settings(model: str) -> list[Setting]:
    """What the form asks for with ``model`` chosen (the model itself is chosen above it, so
    that the form can follow the choice)."""
    return [setting for setting in SETTINGS.values()
            if setting.knob.form and setting.name != "model" and setting.applies_to(model)]


def other_label(setting: Setting) -> str:
    """The text box beside a menu of suggestions (``Knob.other``)."""
    return f"{setting.knob.label}: {setting.knob.other}"


def setting_widget(where: Any, setting: Setting, value: Any) -> Any:
    """One widget for ``setting`` in ``where`` (the page, a column), at ``value``; returns
    the value chosen, of the setting's type (``None`` where the knob's stand-in is left)."""
    knob = setting.knob
    if setting.kind is bool:
        return where.checkbox(knob.label, value=bool(value), help=knob.help)
    menu = list(setting.menu())
    if menu:
        options = menu if value in menu else [*menu, value]  # an unlisted preset value stays
        return where.selectbox(knob.label, options, index=options.index(value), help=knob.help,
                               format_func=lambda choice: knob.choice_labels.get(choice, choice))
    if knob.suggestions:
        options = [*knob.suggestions, knob.other]
        typed = value not in knob.suggestions
        choice = where.selectbox(knob.label, options, help=knob.help,
                                 index=options.index(knob.other if typed else value))
        text = where.text_input(other_label(setting), value if typed else "")
        return text.strip() if choice == knob.other else choice
    shown = knob.none_as if value is None else value
    if setting.kind in (int, float):
        low, high = knob.span or (0, 1_000_000)
        kind = setting.kind
        chosen = kind(where.number_input(
            knob.label, kind(min(low, shown)), kind(max(high, shown)), kind(shown),
            step=None if knob.step is None else kind(knob.step), format=knob.number_format,
            help=knob.help))
    else:
        chosen = where.text_input(knob.label, str(shown), help=knob.help).strip()
    return None if setting.optional and chosen == knob.none_as else chosen


def _rows(settings: list[Setting], per_row: int, base: TrainConfig) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for start in range(0, len(settings), per_row):
        columns = st.columns(per_row)
        for column, setting in zip(columns, settings[start:start + per_row], strict=False):
            values[setting.name] = setting_widget(column, setting, getattr(base, setting.name))
    return values


def settings_form(base: TrainConfig, model: str) -> dict[str, Any]:
    """The widgets of ``form_settings(model)``, grouped by section, the advanced ones folded
    away; call inside ``st.form``. Returns each setting's value by field name."""
    shown = form_settings(model)
    values: dict[str, Any] = {}
    for section, (title, per_row) in SECTIONS.items():
        if title:
            st.markdown(title)
        group = [s for s in shown if s.knob.section == section and not s.knob.advanced]
        values |= _rows(group, per_row, base)
    with st.expander(ADVANCED):
        values |= _rows([s for s in shown if s.knob.advanced], 3, base)
    return values
