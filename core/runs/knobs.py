"""What a person may set on a training run, declared once, on the config field itself.

A ``TrainConfig`` field made with ``knob(...)`` carries a ``Knob`` in its dataclass metadata:
the label and help a person reads, its choices or valid range, the models it applies to and
whether it is advanced. The CLI generates its ``train``, ``cv`` and ``sweep`` options from
these, the Train page draws its form from them and the config validates itself with them,
so a new setting is one field declaration, not three edits that drift apart.

``Setting`` is a knob read back together with its field (name, type, default).
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

from core.errors import BadConfigError

#: The dataclass metadata key a knob is stored under.
KNOB = "knob"


@dataclass(frozen=True)
class Range:
    """Where a number is valid: ``low``/``high`` of ``None`` are unbounded, the ``*_open``
    flags leave that end out. Says what is wrong in the words people already know."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.high is None and self.low == 0:
            return "be positive" if self.low_open else "not be negative"
        return (f"be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, low_open=True, high_open=True)


@dataclass(frozen=True)
class Needs:
    """The other setting a setting matters only with: momentum only with SGD, the patch
    settings only with patch epochs. ``values``: the other setting's values it needs (empty:
    any value but off, zero or empty). The form hides a setting whose need is unmet; the
    config keeps its value, which changes nothing there."""

    setting: str
    values: tuple[Any, ...] = ()

    def met(self, values: Mapping[str, Any]) -> bool:
        value = values.get(self.setting)
        return value in self.values if self.values else bool(value)


@dataclass(frozen=True)
class Knob:
    """How one setting is shown, parsed and checked.

    ``choices``: the only values allowed (a menu in the form, argparse choices on the CLI).
    ``menu``: choices read from a registry only when a menu is drawn (the backbones: reading
    that registry loads Keras, which the CLI must not pay for at start-up).
    ``suggestions``: the usual values of a free-text setting; the form offers them and
    ``other``, which opens a text box (weights: imagenet, none, or a file).
    ``valid``: the range the config accepts; ``span``: the range the form's number box
    offers (inside ``valid``: what is sensible to type, not all that is allowed).
    ``models``: the models the setting changes anything for (empty: every model).
    ``needs``: the other setting it matters only with (``Needs``), if any.
    ``section``: the form group; ``advanced`` settings are folded away.
    ``form``: False for what another page chooses (the dataset and its folder).
    ``flag``: the CLI option (empty: ``--`` and the name with dashes); ``parse`` turns its
    text into a value (default: the field's type).
    ``none_as``: the form's stand-in for ``None`` (0 for "the largest class").
    """

    label: str
    help: str
    choices: tuple[str, ...] = ()
    choice_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    menu: Callable[[], Sequence[str]] | None = None
    suggestions: tuple[str, ...] = ()
    other: str = ""
    valid: Range | None = None
    span: tuple[float, float] | None = None
    step: float | None = None
    number_format: str | None = None
    models: tuple[str, ...] = ()
    needs: Needs | None = None
    section: str = "main"
    advanced: bool = False
    form: bool = True
    flag: str = ""
    parse: Callable[[str], Any] | None = None
    none_as: Any = None


def knob(default: Any, **declaration: Any) -> Any:
    """A dataclass field with ``default`` and the knob ``declaration`` (``Knob``'s fields)."""
    return dataclasses.field(default=default, metadata={KNOB: Knob(**declaration)})


@dataclass(frozen=True)
class Setting:
    """A knob with the field it sits on: ``kind`` is the value type (``int``, ``float``,
    ``str`` or ``bool``), ``optional`` whether ``None`` is allowed too."""

    name: str
    kind: type
    optional: bool
    default: Any
    knob: Knob

    @property
    def flag(self) -> str:
        return self.knob.flag or "--" + self.name.replace("_", "-")

    def applies_to(self, model: str) -> bool:
        return not self.knob.models or model in self.knob.models

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the setting changes anything in a config of these ``values`` (by field
        name): its model is chosen and its need, if any, is met."""
        return self.applies_to(str(values.get("model"))) and (
            self.knob.needs is None or self.knob.needs.met(values))

    def menu(self) -> tuple[str, ...]:
        """The values to pick from, for a form: the choices, the registry's or none."""
        if self.knob.choices:
            return self.knob.choices
        return tuple(self.knob.menu()) if self.knob.menu else ()

    def check(self, value: Any) -> None:
        """Raise ``BadConfigError`` naming the setting when ``value`` is not allowed. The type
        comes first: a config file may hold anything (``"epochs": "many"``), and comparing a
        string with a range would be a ``TypeError`` instead of a message naming the setting."""
        if value is None and self.optional:
            return
        if not _is_kind(value, self.kind):
            raise BadConfigError(f"{self.name} must be {_KIND_WORDS.get(self.kind, 'a value')}"
                                 f", got {value!r}")
        if self.knob.choices and value not in self.knob.choices:
            raise BadConfigError(f"{self.name} must be one of {', '.join(self.knob.choices)}, "
                                 f"got {value!r}")
        if self.knob.valid is not None and not self.knob.valid.holds(value):
            raise BadConfigError(f"{self.name} must {self.knob.valid.describe()}, "
                                 f"got {value!r}")


#: How a message names each value type a knob can have.
_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _is_kind(value: Any, kind: type) -> bool:
    """Whether ``value`` is of the knob's type. ``bool`` is an ``int`` to Python but not to a
    person (``"epochs": true`` is a mistake), and a float setting takes whole numbers too
    (JSON writes ``1.0`` as ``1``) but not NaN or infinity, which no range can judge."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, kind)


def settings_of(config_class: type) -> dict[str, Setting]:
    """The knob-carrying fields of a dataclass, in declaration order."""
    hints = get_type_hints(config_class)
    found = {}
    for field in dataclasses.fields(config_class):
        declared = field.metadata.get(KNOB)
        if declared is None:
            continue
        kind, optional = _value_type(hints[field.name])
        found[field.name] = Setting(field.name, kind, optional, field.default, declared)
    return found


def _value_type(hint: Any) -> tuple[type, bool]:
    """``int | None`` -> ``(int, True)``; ``float`` -> ``(float, False)``."""
    if get_origin(hint) in (Union, types.UnionType):
        members = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"a knob's field needs one value type, got {hint}")
        return members[0], True
    return hint, False
