"""Each loader's options, declared once: what ``load_dataset``, the loaders themselves, the
CLI's flags and the Data page all read.

They sit here, not in the loader modules, because listing them must not import a loader
(CBIS-DDSM's imports pandas): the CLI builds every command's flags at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import BadConfigError


@dataclass(frozen=True)
class DatasetOption:
    """One loader option. ``kind`` is what the CLI parses its text as; ``choices`` (if any)
    are the only values allowed. ``recorded`` options are written into a run's
    ``dataset_options`` even at their default, because they say which films the dataset is
    (CBIS-DDSM's abnormality and mode): a manifest must name them, whatever the default
    becomes later."""

    name: str
    label: str
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    kind: type = str
    recorded: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


#: CBIS-DDSM's ``abnormality`` choices and the description CSV kinds each reads.
CBIS_ABNORMALITIES: Mapping[str, tuple[str, ...]] = {"calc": ("calc",), "mass": ("mass",),
                                                     "both": ("calc", "mass")}
CBIS_MODES: tuple[str, ...] = ("film", "crop")

CBIS_OPTIONS: tuple[DatasetOption, ...] = (
    DatasetOption("abnormality", "Abnormality", "which description files to use",
                  "calc", tuple(CBIS_ABNORMALITIES), recorded=True),
    DatasetOption("mode", "Films or lesion crops", "whole films or lesion crops",
                  "film", CBIS_MODES, recorded=True),
    DatasetOption("csv_dir", "Description CSV folder",
                  "where the description CSVs are (default: the dataset's folder)"),
    DatasetOption("with_masks", "Locate lesions from ROI masks",
                  "film mode: read the ROI masks to locate each lesion", False, kind=bool),
)

MIAS_LESION_OPTIONS: tuple[DatasetOption, ...] = (
    DatasetOption("side_factor", "Crop side (x lesion radius)",
                  "a crop's side in lesion radii", 3.0, kind=float),
    DatasetOption("min_side", "Smallest crop side (px)", "crops are never smaller", 96,
                  kind=int),
    DatasetOption("max_side", "Largest crop side (px)", "crops are never larger", 512,
                  kind=int),
)

RSNA_OPTIONS: tuple[DatasetOption, ...] = (
    DatasetOption("csv_file", "RSNA table (train.csv)",
                  "RSNA's train.csv (default: train.csv in the dataset's folder; without one "
                  "the folder is read as the class-folder export); relative to that folder"),
    DatasetOption("images_dir", "RSNA image folder",
                  "where train.csv's images are, as <patient_id>/<image_id>.dcm or .png "
                  "(default: train_images in the dataset's folder, else the folder)"),
)


FOLDER_OPTIONS: tuple[DatasetOption, ...] = (
    DatasetOption("patient_pattern", "Patient id from the file name (regex)",
                  "a regular expression searched in each file name whose group named patient "
                  "is the patient id, e.g. '^(?P<patient>P_\\d+)_' (CBIS-DDSM); a woman's "
                  "films then stay on one side of every split"),
    DatasetOption("patients_csv", "Patients table (file,patient)",
                  "a CSV with columns file,patient grouping films by woman, relative to the "
                  "folder (default: patients.csv there, when present); its rows win over "
                  "patient_pattern"),
)


def resolve_options(dataset: str, declared: tuple[DatasetOption, ...],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value: the given one, else its default. An option that is
    not declared, or a value outside an option's choices, is a ``BadConfigError`` that
    names it (options are typed by people, and a misspelt one must not be ignored)."""
    names = {option.name for option in declared}
    unknown = sorted(set(given) - names)
    if unknown and not declared:
        raise BadConfigError(f"the {dataset} loader takes no options, got {', '.join(unknown)}")
    if unknown:
        raise BadConfigError(f"unknown {dataset} option(s): {', '.join(unknown)} (it takes "
                             f"{', '.join(sorted(names))})")
    values = {option.name: given.get(option.name, option.default) for option in declared}
    for option in declared:
        if option.choices and values[option.name] not in option.choices:
            raise BadConfigError(f"{option.name} must be one of {', '.join(option.choices)}, "
                                 f"got {values[option.name]!r}")
    return values
