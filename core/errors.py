"""One exception family, so that every entry point can turn a user's mistake into one line.

The CLI and the app catch ``MammoError`` and show ``str(error)``; anything else is a bug
and is allowed to surface as a traceback. Messages therefore always name the file (or
argument) at fault and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path


class MammoError(Exception):
    """Base class for every error caused by input rather than by a bug."""


class BadFilmError(MammoError):
    """A film file that cannot be read: empty, truncated, wrong magic, too large, ..."""

    def __init__(self, path: str | Path, fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")


class BadAnnotationError(MammoError):
    """An annotation file (Info.txt, a CBIS-DDSM CSV) that cannot be used at all."""

    def __init__(self, path: str | Path, fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")


class BadArchiveError(MammoError):
    """An uploaded or downloaded archive that is refused: unsafe member names or types,
    too big, a likely zip bomb, corrupt, or not a zip/tar at all."""

    def __init__(self, path: str | Path, fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")


class BadDatasetError(MammoError):
    """A dataset root that does not hold what its loader needs (no Info.txt, no CSVs, ...)."""


class BadConfigError(MammoError):
    """A configuration value out of range or of the wrong kind."""


def reject_unknown_settings(config_class: type, data: dict, what: str) -> None:
    """Config files are typed by people: a misspelt setting must fail loudly, not be ignored.

    ``config_class`` is a dataclass; ``what`` names the config in the message.
    """
    from dataclasses import fields

    unknown = sorted(set(data) - {f.name for f in fields(config_class)})
    if unknown:
        raise BadConfigError(f"{what}: unknown setting(s) {', '.join(unknown)}")
