"""The results table of an archive scoring run: one Parquet table, written so a killed run
loses nothing it had written and a resumed one knows what is left.

Layout of the output folder ``OUT``::

    OUT/scores/part-<time>-<id>.parquet   the table: every part file together, one row a film
    OUT/overlays/<film>-heatmap.png       the overlays, as ``predict`` writes them

Each batch of scored films becomes one part file, written under a hidden temporary name and
renamed into place (``core.atomic``), so a part is either whole or absent: killing the run
loses at most the batches in flight. Readers (``pandas.read_parquet("OUT/scores")``,
``pyarrow.dataset``, Spark, DuckDB) see the part files as one table and skip hidden files. A
finished run merges its parts into one (``compact``); a film that appears in two parts (a
merge killed between writing the merged part and deleting the others) is read once, from
the newest part, since part names sort by the time they were written.

Columns (``schema``): ``file`` (the film's absolute path: the key a resumed run skips by),
``label`` (the predicted class), ``probability_<class>`` for each of the run's classes,
``abnormal_score`` (1 - p(NORM), for class sets with a NORM class) and ``cancer_score``
(p(positive class), for two-class sets with one: ``core.data.records.positive_class``),
null where the class set does not define them; ``overlay`` (the overlay's path relative to
``OUT``, so the folder can move), ``synthetic`` (the run was trained on SYNTHETIC films),
``warnings`` (what ``predict`` warned about the film), ``error`` (one line; the other score
columns are then null) and ``details`` (any other field ``predict`` gave the film, such as a
DICOM's gate, as JSON text). The table's schema metadata names the run that scored it, so
a resumed run with another model is refused instead of mixing two models' scores.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.atomic import atomic_path, make_folder
from core.data.records import NORMAL_CLASS, positive_class
from core.errors import BadConfigError
from core.evaluate.predict import HEATMAP_SUFFIX

#: Folders inside the output folder: the table's part files, and the overlays.
SCORES = "scores"
OVERLAYS = "overlays"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
#: Entry fields of ``predict_films`` that have columns of their own; others go to details.
_COLUMN_FIELDS = frozenset({"file", "label", "probabilities", "heatmap", "synthetic",
                            "warnings", "error"})
_RUN_KEY = b"mammo.run"


def probability_column(class_name: str) -> str:
    return f"probability_{class_name}"


def schema(classes: Sequence[str], run_path: str | Path) -> pa.Schema:
    """The table's columns for a run with these classes (the module docstring says what each
    holds); the run's folder (an ensemble's folders, one a line) is in the schema's
    metadata."""
    fields = [pa.field("file", pa.string(), nullable=False), pa.field("label", pa.string())]
    fields += [pa.field(probability_column(name), pa.float64()) for name in classes]
    fields += [pa.field("abnormal_score", pa.float64()), pa.field("cancer_score", pa.float64()),
               pa.field("overlay", pa.string()), pa.field("synthetic", pa.bool_()),
               pa.field("warnings", pa.list_(pa.string())), pa.field("error", pa.string()),
               pa.field("details", pa.string())]
    return pa.schema(fields, metadata={_RUN_KEY: str(run_path).encode()})


def entries_table(entries: Sequence[dict[str, Any]], classes: Sequence[str],
                  run_path: str | Path, out: Path, synthetic: bool) -> pa.Table:
    """``predict_films``' entries as rows of the table (``out`` is the output folder the
    overlay paths are made relative to)."""
    columns: dict[str, list[Any]] = {name: [] for name in schema(classes, run_path).names}
    normal = NORMAL_CLASS if NORMAL_CLASS in classes else None
    positive = positive_class(classes)
    for entry in entries:
        probabilities = entry.get("probabilities")
        columns["file"].append(entry["file"])
        columns["label"].append(entry.get("label"))
        for name in classes:
            columns[probability_column(name)].append(
                None if probabilities is None else float(probabilities[name]))
        columns["abnormal_score"].append(
            None if probabilities is None or normal is None else 1.0 - probabilities[normal])
        columns["cancer_score"].append(
            None if probabilities is None or positive is None
            else probabilities[classes[positive]])
        heatmap = entry.get("heatmap")
        columns["overlay"].append(None if heatmap is None
                                  else Path(heatmap).relative_to(out).as_posix())
        columns["synthetic"].append(bool(entry.get("synthetic", synthetic)))
        columns["warnings"].append([str(warning) for warning in entry.get("warnings", [])])
        columns["error"].append(entry.get("error"))
        details = {key: value for key, value in entry.items() if key not in _COLUMN_FIELDS}
        columns["details"].append(json.dumps(details, default=str) if details else None)
    return pa.table(columns, schema=schema(classes, run_path))


def write_part(out: Path, table: pa.Table, columns: pa.Schema | None = None) -> Path:
    """``table`` as a new part file of the table in ``out``, whole or not at all; with
    ``columns`` (``schema``), cast to it first (a table that went through Ray has lost its
    schema's metadata)."""
    if columns is not None:
        table = table.select(columns.names).cast(columns)
    name = f"{PART_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
    part = make_folder(out / SCORES, "scores table folder") / name
    with atomic_path(part) as tmp:
        pq.write_table(table, tmp)
    return part


def parts(out: Path) -> list[Path]:
    """The table's part files, oldest first (hidden, half-written files are not parts)."""
    folder = out / SCORES
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if path.name.startswith(PART_PREFIX) and path.name.endswith(PART_SUFFIX))


def read_scores(out: Path, run_path: str | Path | None = None) -> pa.Table | None:
    """The table in ``out``, each film once (its newest row); None when nothing is written
    yet. With ``run_path``, a table scored by another run is one ``BadConfigError``, as is
    a part file that is not a table of scores."""
    files = parts(out)
    if not files:
        return None
    tables = [_read_part(part) for part in files]
    first = tables[0].schema
    for part, table in zip(files, tables):
        if table.schema.metadata != first.metadata or table.schema != first:
            raise BadConfigError(f"{part}: its columns or run differ from {files[0].name}'s "
                                 "(two runs scored into one folder)")
    scored_by = (first.metadata or {}).get(_RUN_KEY, b"").decode()
    if run_path is not None and scored_by != str(run_path):
        def named(runs: str) -> str:  # an ensemble's runs are kept one a line
            return " + ".join(runs.splitlines())

        raise BadConfigError(f"{out}: holds the scores of run {named(scored_by) or 'unknown'}, "
                             f"not of {named(str(run_path))}; give another output folder")
    table = pa.concat_tables(tables)
    newest = {file: row for row, file in enumerate(table.column("file").to_pylist())}
    if len(newest) == table.num_rows:
        return table
    return table.take(sorted(newest.values()))


def compact(out: Path) -> None:
    """Merge the part files into one (a finished run's table is then one file); the merged
    part is written before the others go, so a kill between leaves rows twice, never none."""
    files = parts(out)
    if len(files) < 2:
        return
    table = read_scores(out)
    assert table is not None  # there are parts
    write_part(out, table)
    for part in files:
        part.unlink(missing_ok=True)


def clear_debris(out: Path, table: pa.Table | None) -> int:
    """Delete what a killed run leaves beside its whole files: hidden, half-written files in
    both folders, and overlays no row of ``table`` names (films scored but not recorded
    before the kill; a rerun scores them again, with fresh overlays). Returns how many
    files were deleted."""
    named = set() if table is None else {
        name for name in table.column("overlay").to_pylist() if name is not None}
    removed = 0
    for folder in (out / SCORES, out / OVERLAYS):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            stray_overlay = folder.name == OVERLAYS and path.name.endswith(HEATMAP_SUFFIX) \
                and f"{OVERLAYS}/{path.name}" not in named
            if path.is_file() and (stray_overlay or path.name.startswith(".")):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _read_part(part: Path) -> pa.Table:
    try:
        return pq.read_table(part)
    except (OSError, pa.ArrowInvalid) as error:
        raise BadConfigError(f"{part}: not a table of scores ({error})") from None
