"""The Train page's form, drawn from the training settings' knobs (``core.runs.knobs``).

Only what changes anything is asked for: the settings of the chosen model kind
(``Knob.models``) whose need is met (``Knob.needs``: momentum with SGD, the patch settings
with patch epochs, the augmentation target with augmenting), each with the widget, label and
help its declaration gives, the advanced ones folded into one expander. So that a choice
redraws the form at once, it is no ``st.form``: every widget has a key scoped by the form's
``scope`` (the preset), which starts each widget at the preset's value and keeps what the
user typed across the reruns in between. A setting the form does not show keeps the
preset's value. Nothing about a setting is written here, so the form, the CLI and the
config's own checks cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def widget_key(scope: str, name: str) -> str:
    return f"train-{scope}-{name}"


def current_values(base: TrainConfig, scope: str) -> dict[str, Any]:
    """Each setting as its widget holds it now (the preset's value before it is drawn):
    what decides which settings apply, before the widgets of this run are drawn."""
    return {name: st.session_state.get(widget_key(scope, name), getattr(base, name))
            for name in SETTINGS}


def form_settings(values: Mapping[str, Any]) -> list[Setting]:
    """What the form asks for, given the choices ``values`` (by field name, with ``model``):
    the model itself is chosen above the form, so that the form can follow it."""
    return [setting for setting in SETTINGS.values()
            if setting.knob.form and setting.name != "model" and setting.applies(values)]


def other_label(setting: Setting) -> str:
    """The text box beside a menu of suggestions (``Knob.other``)."""
    return f"{setting.knob.label}: {setting.knob.other}"


def setting_widget(where: Any, setting: Setting, value: Any, key: str) -> Any:
    """One widget for ``setting`` in ``where`` (the page, a column), starting at ``value``;
    returns the value chosen, of the setting's type (``None`` where the knob's stand-in is
    left)."""
    knob = setting.knob
    if setting.kind is bool:
        return where.checkbox(knob.label, value=bool(value), help=knob.help, key=key)
    menu = list(setting.menu())
    label_of = lambda choice: knob.choice_labels.get(choice, choice)
    if menu:
        options = menu if value in menu else [*menu, value]  # an unlisted preset value stays
        return where.selectbox(knob.label, options, index=options.index(value), help=knob.help,
                               format_func=label_of, key=key)
    if knob.suggestions:
        options = [*knob.suggestions, knob.other]
        typed = value not in knob.suggestions
        choice = where.selectbox(knob.label, options, help=knob.help, format_func=label_of,
                                 index=options.index(knob.other if typed else value), key=key)
        if choice != knob.other:
            return choice
        return where.text_input(other_label(setting), value if typed else "",
                                key=f"{key}-other").strip()
    shown = knob.none_as if value is None else value
    if setting.kind in (int, float):
        low, high = knob.span or (0, 1_000_000)
        kind = setting.kind
        chosen = kind(where.number_input(
            knob.label, kind(min(low, shown)), kind(max(high, shown)), kind(shown),
            step=None if knob.step is None else kind(knob.step), format=knob.number_format,
            help=knob.help, key=key))
    else:
        chosen = where.text_input(knob.label, str(shown), help=knob.help, key=key).strip()
    return None if setting.optional and chosen == knob.none_as else chosen


def model_widget(base: TrainConfig, scope: str) -> str:
    """The model kind, chosen first: the rest of the form follows it."""
    return setting_widget(st, SETTINGS["model"], base.model, widget_key(scope, "model"))


def _rows(settings: list[Setting], per_row: int, base: TrainConfig,
          scope: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for start in range(0, len(settings), per_row):
        columns = st.columns(per_row)
        for column, setting in zip(columns, settings[start:start + per_row], strict=False):
            values[setting.name] = setting_widget(column, setting, getattr(base, setting.name),
                                                  widget_key(scope, setting.name))
    return values


def settings_form(base: TrainConfig, scope: str, model: str) -> dict[str, Any]:
    """The widgets of the settings that apply to the current choices, grouped by section,
    the advanced ones folded away. Returns each shown setting's value by field name."""
    shown = form_settings({**current_values(base, scope), "model": model})
    values: dict[str, Any] = {}
    for section, (title, per_row) in SECTIONS.items():
        group = [s for s in shown if s.knob.section == section and not s.knob.advanced]
        if title and group:
            st.markdown(title)
        values |= _rows(group, per_row, base, scope)
    with st.expander(ADVANCED):
        values |= _rows([s for s in shown if s.knob.advanced], 3, base, scope)
    return values
