"""Data page: choose the dataset (a folder, an uploaded archive, the official download, an
RSNA screening folder or SYNTHETIC demo films), then see its summary, browse its films and
the class counts training will see before and after balancing.

Logic lives in ``core.data`` (loaders, ``archive``, ``download``, ``browse``); this page wires
widgets to it. Datasets and thumbnails are cached, and only the films on the browser's current
page are ever decoded, so a 256-film dataset stays quick.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.data import LOADERS, loader
from core.data.archive import extract_archive, folder_name
from core.data.download import adopt_readme, download_mias, mias_url
from core.data.records import CLASS_NAMES, Dataset, FilmRecord
from core.data.synthetic import generate
from core.errors import BadFilmError
from core.experiments.browse import (
    class_counts,
    counts_figure,
    describe,
    filter_options,
    filter_records,
    severity_of,
    thumbnail,
    tissue_of,
)
from core.prep.survey import survey
from core.runs.config import TrainConfig
from core.settings import data_root
from ui.notices import show_listed, sort_warnings
from ui.state import (
    ActiveDataset,
    active_dataset,
    enter_through_app,
    folder_stamp,
    read_dataset,
    set_active_dataset,
    show_error,
)
from ui.tables import EMPTY

enter_through_app()

MIAS_FOLDER = "MIAS folder"
MIAS_ARCHIVE = "MIAS archive (.tar.gz/.zip)"
MIAS_DOWNLOAD = "Download mini-MIAS"
CBIS_FOLDER = "CBIS-DDSM folder"
RSNA_FOLDER = "RSNA screening folder"
CLASS_FOLDERS = "Class folders"
SYNTHETIC = "SYNTHETIC demo films"
SOURCES = (MIAS_FOLDER, MIAS_ARCHIVE, MIAS_DOWNLOAD, CBIS_FOLDER, RSNA_FOLDER, CLASS_FOLDERS,
           SYNTHETIC)
SYNTHETIC_SIZES = (128, 256, 512, 1024)
PAGE_SIZE = 12
GRID_COLUMNS = 4
THUMBNAIL_PX = 256


# -- cached reads (the dataset itself: ui.state.read_dataset, shared with the sidebar) ---------


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_counts(active: ActiveDataset, stamp: tuple[int, int, int], test_size: float,
                   target: int | None, seed: int) -> pd.DataFrame:
    """Class counts per split part; cached so that paging through films does not re-split."""
    config = TrainConfig(dataset=active.name, root=active.root,
                         dataset_options=dict(active.options), test_size=test_size,
                         balance="augment", augment_target=target, seed=seed)
    return class_counts(read_dataset(active.name, active.root, active.options), config)


@st.cache_data(show_spinner="Reading every film to check its polarity...", max_entries=8)
def _cached_survey(name: str, root: str, options: str, stamp: tuple[int, int, int]
                   ) -> tuple[int, dict[str, int], list[str]]:
    dataset = read_dataset(name, root, json.loads(options))
    found = survey(dataset.records, dataset.classes)
    return len(found.inverted), found.by_class, found.warnings()


@st.cache_data(show_spinner=False, max_entries=2048)
def _cached_thumbnail(path: str, mtime_ns: int, lesions: tuple[Any, ...],
                      _record: FilmRecord) -> np.ndarray:
    return thumbnail(_record, THUMBNAIL_PX)


def _thumbnail(record: FilmRecord) -> np.ndarray:
    """Keyed by file and modification time (and the lesions drawn), not by the record."""
    try:
        mtime = record.path.stat().st_mtime_ns
    except OSError as error:
        raise BadFilmError(record.path, f"cannot be read ({error.strerror})") from None
    lesions = tuple((lesion.center, lesion.radius) for lesion in record.located_lesions)
    return _cached_thumbnail(str(record.path), mtime, lesions, record)


# -- choosing a dataset -------------------------------------------------------------------------
def _use(name: str, root: str | Path, options: dict[str, Any] | None = None) -> None:
    """Load the dataset (which checks it) and make it the session's; errors are one line."""
    options = options or {}
    try:
        dataset = read_dataset(name, root, options)
    except Exception as error:  # noqa: BLE001 - user input: one line, never a traceback
        show_error(error, f"Cannot use {root}")
        return
    set_active_dataset(ActiveDataset(name, str(root), options, dataset.synthetic))
    st.rerun()  # the sidebar, drawn before this page, shows the new choice


def _folder_input(label: str, key: str, placeholder: str) -> Path | None:
    text = st.text_input(label, key=key, placeholder=placeholder).strip().strip("'\"")
    return Path(text).expanduser().absolute() if text else None


def _from_folder(name: str, label: str, key: str, options: dict[str, Any] | None = None) -> None:
    root = _folder_input(label, f"{key}_path", "/path/to/the/folder")
    if st.button("Use this dataset", key=f"use_{key}", type="primary"):
        if root is None:
            st.error("Enter a folder first.", icon=":material/error:")
        else:
            _use(name, root, options)


def unpack_upload(file_name: str, content: Any, base: Path) -> Path:
    """Extract an uploaded archive safely into ``base/uploads/<name>`` (replacing an earlier
    upload of the same name) and return that folder."""
    dest = base / "uploads" / folder_name(file_name)
    extract_archive(content, dest, name=file_name, replace=True)
    adopt_readme(dest)
    return dest


def _from_archive() -> None:
    uploaded = st.file_uploader("MIAS archive", type=["gz", "tgz", "tar", "zip"],
                                key="archive_upload",
                                help="all-mias.tar.gz as published, or a zip of the folder")
    kind = st.selectbox("It holds", ["mias", "folder"], key="archive_kind",
                        format_func=lambda k: {"mias": "MIAS (Info.txt + mdbNNN films)",
                                               "folder": "class folders"}[k])
    if uploaded is not None and st.button("Extract and use", key="use_archive",
                                          type="primary"):
        try:
            with st.spinner("Checking and extracting the archive..."):
                root = unpack_upload(uploaded.name, uploaded, data_root())
        except Exception as error:  # noqa: BLE001 - an uploaded file: one line, no traceback
            show_error(error, "Archive refused")
            return
        _use(kind, root)


def _from_download() -> None:
    url = mias_url()
    dest = data_root() / "mias-download"
    st.caption(f"Fetches {url} (an archive already saved beside {dest} is reused) and "
               f"extracts it safely into {dest}.")
    if dest.is_dir() and st.button("Use the downloaded copy", key="use_downloaded"):
        _use("mias", dest)
    if not st.button("Download and extract", key="download"):
        return
    bar = st.progress(0.0, text="Connecting...")
    shown = [-1]

    def on_progress(done: int, total: int | None) -> None:
        step = int(100 * done / total) if total else done // 1_000_000
        if step != shown[0]:  # one update per percent (or per MB), not per chunk
            shown[0] = step
            text = (f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total
                    else f"{done / 1e6:.1f} MB")
            bar.progress(min(done / total, 1.0) if total else 0.0, text=text)

    try:
        download_mias(dest, url=url, progress=on_progress, replace=True)
    except Exception as error:  # noqa: BLE001 - network and archive faults: one line
        bar.empty()
        show_error(error, "Download failed")
        return
    _use("mias", dest)


def _synthetic() -> None:
    st.warning("SYNTHETIC films are drawn by a program. They are not mammograms; use them to "
               "try the app, never to judge a model.", icon=":material/science:")
    left, middle, right = st.columns(3)
    n = int(left.number_input("Films", 7, 999, 70, step=7, key="synthetic_n"))
    seed = int(middle.number_input("Seed", 0, 1_000_000, 0, key="synthetic_seed"))
    size = int(right.selectbox("Size (px)", SYNTHETIC_SIZES, index=2, key="synthetic_size"))
    if not st.button("Generate and use", key="use_synthetic", type="primary"):
        return
    suffix = "" if size == 512 else f"-{size}px"
    root = data_root() / f"synthetic-n{n}-seed{seed}{suffix}"
    try:
        if not (root / "Info.txt").is_file():  # written last, so present means complete
            with st.spinner(f"Drawing {n} SYNTHETIC films..."):
                generate(root, n=n, seed=seed, size=size)
    except Exception as error:  # noqa: BLE001 - user input: one line, never a traceback
        show_error(error, "Cannot generate")
        return
    _use("mias", root)


def _subset_options(name: str) -> dict[str, Any]:
    """A menu for each option that says which films a dataset is (CBIS-DDSM's abnormality
    and mode: ``DatasetOption.recorded``), as the loader declares it."""
    subset = [option for option in LOADERS[name].options if option.recorded]
    columns = st.columns(len(subset))
    return {option.name: column.selectbox(option.label, option.choices, help=option.help,
                                          index=option.choices.index(option.default),
                                          key=f"{name}_{option.name}")
            for column, option in zip(columns, subset, strict=True)}


def choose_dataset() -> None:
    source = st.radio("Source", SOURCES, horizontal=True, key="data_source")
    if source == MIAS_FOLDER:
        _from_folder("mias", "MIAS folder (Info.txt and mdbNNN films, at any depth)", "mias")
    elif source == MIAS_ARCHIVE:
        _from_archive()
    elif source == MIAS_DOWNLOAD:
        _from_download()
    elif source == CBIS_FOLDER:
        _from_folder("cbis", "CBIS-DDSM folder (description CSVs and images)", "cbis",
                     _subset_options("cbis"))
    elif source == RSNA_FOLDER:
        st.caption("Cancer vs no cancer, per breast: RSNA's own train.csv with train_images/, "
                   "or the 640-px export's malignant/ (cancer) and benign/ (no cancer) "
                   "folders. Films stored inverted are found and corrected.")
        _from_folder("rsna", "RSNA folder (train.csv and train_images/, or malignant/ and "
                     "benign/)", "rsna")
    elif source == CLASS_FOLDERS:
        _from_folder("folder", "Folder with one sub-folder of films per class", "folder")
    else:
        _synthetic()


# -- the active dataset -------------------------------------------------------------------------
def show_summary(dataset: Dataset) -> None:
    summary = dataset.summary()
    present = sum(1 for count in summary["classes"].values() if count)
    cells = st.columns(6)
    cells[0].metric("Films", summary["films"])
    cells[1].metric("Classes", present)
    cells[2].metric("Patients", summary["patients"])
    cells[3].metric("Annotation rows", summary["rows"])
    cells[4].metric("Lesions located", summary["lesions_located"])
    cells[5].metric("Missing films", len(summary["missing"]))
    left, middle, right = st.columns([2, 1, 1])
    left.dataframe(pd.DataFrame({"class": list(summary["classes"]),
                                 "meaning": [CLASS_NAMES.get(c, "") for c in summary["classes"]],
                                 "films": list(summary["classes"].values())}),
                   hide_index=True, placeholder=EMPTY)
    middle.dataframe(pd.DataFrame({"severity": [describe(s, "severity")
                                                for s in summary["severity"]],
                                   "films": list(summary["severity"].values())}),
                     hide_index=True, placeholder=EMPTY)
    right.dataframe(pd.DataFrame({"tissue": [describe(t, "tissue") for t in summary["tissue"]],
                                  "films": list(summary["tissue"].values())}), hide_index=True,
                      placeholder=EMPTY)
    # The missing films are one notice (their count, their names folded), not one per
    # mention; the other warnings are in view, not only in a closed expander: the counts
    # above leave these out.
    st.caption(f"{summary['films_with_other_breast']} of {summary['films']} films have the "
               "film of the other breast (same woman, same view) beside them, which a model "
               "that reads both breasts reads them with.")
    listed, warnings = sort_warnings(summary["warnings"])
    show_listed(listed, missing=summary["missing"])
    if warnings:
        st.warning(f"{len(warnings)} warning(s) while reading: some annotation rows, films "
                   "or files are missing or could not be used, and are left out; the list "
                   "below says which and why.", icon=":material/warning:")
        with st.expander(f"{len(warnings)} warning(s) while reading", expanded=True):
            for line in warnings:
                st.text(line)
    elif not listed:
        st.caption("Every annotation row and film was usable.")


def show_polarity(active: ActiveDataset) -> None:
    """How many films are stored inverted: read from every film, so on request (or at once
    for datasets whose files cannot mark them, as ``data summary`` does)."""
    asked = st.button("Count films stored inverted", key="count_inverted",
                      help="reads every film; they are corrected wherever films are prepared")
    if not (asked or loader(active.name).polarity_unknown):
        return
    try:
        count, by_class, warnings = _cached_survey(
            active.name, active.root, json.dumps(active.options, sort_keys=True),
            folder_stamp(active.root))
    except Exception as error:  # noqa: BLE001 - the folder may have changed since
        show_error(error, "Cannot read the films")
        return
    shares = ", ".join(f"{name} {films}" for name, films in by_class.items())
    st.metric("Films stored inverted (corrected before training)", count)
    st.caption(f"Per class: {shares}. A share that differs between classes is something a "
               "model could learn instead of the disease; correcting them removes it.")
    for line in warnings:
        st.warning(line, icon=":material/warning:")


def show_browser(dataset: Dataset, key: str) -> None:
    options = filter_options(dataset)
    left, middle, right = st.columns(3)
    classes = left.multiselect("Class", options["class"], key=f"browse_class_{key}",
                               placeholder="all classes")
    severities = middle.multiselect("Severity", options["severity"], placeholder="all",
                                    format_func=lambda v: describe(v, "severity"),
                                    key=f"browse_severity_{key}")
    tissues = right.multiselect("Tissue", options["tissue"], placeholder="all",
                                format_func=lambda v: describe(v, "tissue"),
                                key=f"browse_tissue_{key}")
    chosen = filter_records(dataset.records, classes, severities, tissues)
    if not chosen:
        st.info("No film matches these filters.")
        return
    grid = st.container()
    pages = math.ceil(len(chosen) / PAGE_SIZE)
    # New filters make a new pagination widget, so a new selection starts on its first page.
    filters = hashlib.sha1(repr((classes, severities, tissues)).encode()).hexdigest()[:8]
    page = st.pagination(pages, key=f"browse_page_{key}_{filters}") if pages > 1 else 1
    st.caption(f"{len(chosen)} film(s), page {page} of {pages}; red circles are the annotated "
               "lesions")
    shown = chosen[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    with grid:
        columns = st.columns(GRID_COLUMNS)
        for index, record in enumerate(shown):
            cell = columns[index % GRID_COLUMNS]
            tag = "SYNTHETIC " if record.synthetic else ""
            severity = describe(severity_of(record), "severity")
            caption = (f"{tag}{record.film_id}: {record.label}, {severity}, "
                       f"tissue {tissue_of(record)}")
            try:
                cell.image(_thumbnail(record), caption=caption)
            except BadFilmError as error:
                cell.warning(f"{record.film_id}: {error.fault}", icon=":material/broken_image:")
            except Exception as error:  # noqa: BLE001 - one odd film must not stop the page
                cell.warning(f"{record.film_id}: {type(error).__name__}: {error}",
                             icon=":material/broken_image:")


def show_counts(active: ActiveDataset) -> None:
    left, middle, right = st.columns(3)
    test_size = left.slider("Test share (patients held out)", 0.1, 0.5, 0.25, 0.05,
                            key="counts_test_size")
    target = middle.number_input("Augmentation target: total train films (0: every class as "
                                 "large as the largest)", 0, 100_000, 0, step=100,
                                 key="counts_target")
    seed = right.number_input("Split seed", 0, 1_000_000, 0, key="counts_seed")
    try:
        table = _cached_counts(active, folder_stamp(active.root), float(test_size),
                               int(target) or None, int(seed))
    except Exception as error:  # noqa: BLE001 - the user's settings: one line
        show_error(error, "Cannot split this dataset")
        return
    st.plotly_chart(counts_figure(table, synthetic=active.synthetic), key="counts_chart")
    st.caption("The same patient-grouped split and balancing as training with these settings "
               "(validation share 0.2); only the train part is grown, with augmented copies.")
    with st.expander("Counts as a table"):
        wide = table.pivot_table(index="class", columns=["stage", "part"], values="films",
                                 sort=False)
        wide.columns = [f"{part} {stage}" for stage, part in wide.columns]
        st.dataframe(wide, placeholder=EMPTY, column_config={
            column: st.column_config.NumberColumn(format="%.0f") for column in wide.columns})


def main() -> None:
    st.title("Data")
    st.caption("Pick the films to work on. Everything else in the app uses the dataset "
               "chosen here.")
    choose_dataset()
    active = active_dataset()
    st.divider()
    if active is None:
        st.info("No dataset chosen yet: pick a source above and press its button.")
        return
    if active.synthetic:
        st.warning("SYNTHETIC dataset: these films were drawn by a program, not taken of "
                   "patients. Results on them say nothing about real mammograms.",
                   icon=":material/science:")
    st.subheader(f"Active dataset: {active.label}")
    try:
        dataset = read_dataset(active.name, active.root, active.options)
    except Exception as error:  # noqa: BLE001 - the folder may have changed since
        show_error(error, f"Cannot read {active.root}")
        return
    key = hashlib.sha1(f"{active.name}|{active.root}".encode()).hexdigest()[:8]
    show_summary(dataset)
    show_polarity(active)
    st.subheader("Films")
    show_browser(dataset, key)
    st.subheader("Class counts for training, before and after balancing")
    show_counts(active)


main()
