"""``python -m core``: the command line over the library.

Contract (the app, CI and scripts rely on it): every subcommand accepts ``--json`` and then
prints exactly one JSON document on stdout; logs go to stderr; a user's mistake (bad path,
bad film, bad option) prints one line on stderr and exits with status 2, never a traceback.
A traceback means a bug in this package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.atomic import read_json_object
from core.data import LOADERS, dataset_options
from core.data.options import DatasetOption
from core.errors import BadConfigError, MammoError
from core.evaluate.overlay_size import OverlaySize
from core.metrics.headline import RANKED_BY, VALIDATION, keys
from core.runs.config import SETTINGS, TrainConfig, dataset_default
from core.runs.knobs import Setting, settings_of
from core.settings import DOWNLOAD_WEIGHTS_ENV

if TYPE_CHECKING:
    from core.runs.folder import Run

log = logging.getLogger("core")

USER_ERROR = 2

#: A command returns one JSON document: an object, or a table as a list of row objects.
Handler = Callable[[argparse.Namespace], dict[str, Any] | list[dict[str, Any]]]


class _Parser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a mistake; we promise one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"error: {message} (see `{self.prog} --help`)\n")


# -- commands ----------------------------------------------------------------------------------
def _data_summary(args: argparse.Namespace) -> dict[str, Any]:
    """The loader's summary, and with ``--inverted`` (the default for datasets whose files may
    hold unmarked inverted films) how many films are stored inverted, in all and per class,
    and what the DICOM films' headers say (``dicom``: counts of each gate field's values);
    ``inverted`` and ``dicom`` are null when the films were not read (or none is a DICOM)."""
    from core.data import load_dataset, loader

    dataset = load_dataset(args.dataset, args.root, **_dataset_options(args, args.dataset))
    summary = dataset.summary()
    read_films = loader(args.dataset).polarity_unknown if args.inverted is None \
        else args.inverted
    summary["inverted"] = summary["inverted_by_class"] = summary["dicom"] = None
    if read_films:
        from core.prep.survey import survey

        found = survey(dataset.records, dataset.classes)
        summary["inverted"], summary["inverted_by_class"] = len(found.inverted), found.by_class
        summary["dicom"] = found.dicom
        summary["warnings"] += found.warnings()
    return summary


def _data_synth(args: argparse.Namespace) -> dict[str, Any]:
    from core.data import load_dataset
    from core.data.synthetic import generate

    out = generate(args.out, n=args.n, seed=args.seed, size=args.size)
    summary = load_dataset("mias", out).summary()
    return {"out": str(out), "seed": args.seed, "size": args.size, **summary}


def _import_keras_quietly() -> None:
    """Import Keras (and its backend) with the process's stderr muted.

    TensorFlow's C++ start-up notes (oneDNN, CPU features) bypass Python and every logging
    switch; they would bury our one-line messages. Muting file descriptor 2 for the import
    alone keeps everything after it, including real errors, visible. ``-v`` keeps them.
    """
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_config_file(path: Path) -> dict[str, Any]:
    """A ``--config`` file's settings: the user's file, so any fault is one error naming it."""
    return read_json_object(path, "JSON config")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults (the dataset's, ``DATASET_DEFAULTS``), then a ``--config`` JSON file, then the
    options given on the command line."""
    values = _read_config_file(args.config) if args.config else {}
    for name in SETTINGS:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    given = _given_dataset_options(args)
    if args.dataset is not None or given:
        dataset = values.get("dataset", SETTINGS["dataset"].default)
        in_file = values.get("dataset_options") or {}
        if not isinstance(in_file, dict):
            raise BadConfigError(f"{args.config}: dataset_options must be an object")
        values["dataset_options"] = {**dataset_options(dataset, given), **in_file, **given}
    try:
        dataset = values.pop("dataset", SETTINGS["dataset"].default)
        return dataset_default(dataset, **values)
    except BadConfigError as error:
        if not args.config:
            raise
        raise BadConfigError(f"{args.config} (with the options given): {error}") from None


def _train(args: argparse.Namespace) -> dict[str, Any]:
    if args.resume is None and args.root is None and args.config is None:
        raise BadConfigError("--root is required (the dataset's folder), or --resume RUN")
    config = None if args.resume else _train_config(args)
    if not args.verbose:
        _import_keras_quietly()
    from core.train.fit import resume, train  # Keras loads here, after the cheap checks

    run = resume(args.resume) if config is None else train(config, args.out)
    manifest = run.manifest
    return {"run": str(run.path), "status": manifest["status"], "val": manifest.get("val"),
            "seconds": manifest.get("seconds"), "warnings": manifest.get("warnings", [])}


def _sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    from core.experiments.sweep import parse_grid, run_sweep

    base = _train_config(args)
    if not args.verbose:
        _import_keras_quietly()
    return run_sweep(base, parse_grid(args.grid, base), args.out, sort_by=args.sort_by)


def _cv(args: argparse.Namespace) -> dict[str, Any]:
    base = _train_config(args)
    if not args.verbose:
        _import_keras_quietly()
    from core.experiments.cv import run_cv, run_split_pair

    if args.compare_splits:
        return run_split_pair(base, folds=args.folds, out_root=args.out)
    return run_cv(base, folds=args.folds, out_root=args.out)


class _NothingDone(Exception):
    """A command that ran but achieved none of its work: its document is still printed (it
    says what went wrong with each item), and the process exits with ``USER_ERROR``."""

    def __init__(self, document: dict[str, Any] | list[dict[str, Any]], message: str) -> None:
        super().__init__(message)
        self.document = document


def _predict(args: argparse.Namespace) -> dict[str, Any] | list[dict[str, Any]]:
    from core.evaluate.film_list import all_films
    from core.runs.folder import open_run

    if args.engine != "ray" and (args.address is not None or args.actors is not None):
        raise BadConfigError("--address and --actors go with --engine ray")
    if args.other and (args.engine == "ray" or args.input):
        raise BadConfigError("--other goes with films named one by one (not --input), with "
                             "--engine local")
    if args.other and len(args.other) != len(args.files):
        raise BadConfigError(f"{len(args.other)} --other film(s) for {len(args.files)} "
                             "film(s): give one per film, in the same order")
    if args.engine == "ray" and args.dicom_out is not None:
        raise BadConfigError("--dicom-out goes with --engine local (Ray writes a table)")
    chosen = {name: getattr(args, name) for name in settings_of(OverlaySize)
              if getattr(args, name) is not None}
    if args.engine == "ray" and chosen:
        raise BadConfigError("--overlay-side and --full-resolution-map go with --engine local")
    size = OverlaySize(**chosen)  # a bad value stops here, before Keras loads
    if not args.files and not args.input:
        raise BadConfigError("no films: give films, or a folder or list with --input")
    run = open_run(args.run)  # a missing run fails here, before Keras loads
    also = [open_run(path) for path in args.also]
    films = all_films(args.files, args.input) if args.input else args.files
    if not args.verbose:
        _import_keras_quietly()
    if args.engine == "ray":
        return _predict_on_ray(args, run, films, also)
    from core.evaluate.predict import predict_films

    made_out = not args.out.exists()
    entries = predict_films(run, films, args.out, size, dicom_dir=args.dicom_out,
                            others=args.other or None, also=also)
    failed = [entry for entry in entries if "error" in entry]
    if entries and len(failed) == len(entries):  # a script must not read this as success
        if made_out:
            with contextlib.suppress(OSError):
                args.out.rmdir()  # only if empty: nothing was written, leave nothing behind
        raise _NothingDone(entries, f"no film could be scored ({len(failed)} of "
                                    f"{len(entries)} failed; first: {failed[0]['error']})")
    return entries


def _predict_on_ray(args: argparse.Namespace, run: Run, films: Sequence[Path],
                    also: Sequence[Run]) -> dict[str, Any]:
    """Archive scoring: a summary of what was done (the rows are in the Parquet table)."""
    from core.evaluate.ray_scoring import score_archive

    summary = score_archive(run, films, args.out, address=args.address, actors=args.actors,
                            verbose=args.verbose, also=also)
    if summary["scored"] and summary["failed"] == summary["scored"]:
        raise _NothingDone(summary, f"no film could be scored ({summary['failed']} failed; "
                                    f"their errors are in {summary['table']})")
    return summary


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from core.runs.folder import open_run

    if (args.dataset is None) != (args.root is None):
        raise BadConfigError("--dataset and --root go together (an external test set)")
    run = open_run(args.run)
    if not args.verbose:
        _import_keras_quietly()
    from core.evaluate.evaluate import evaluate_run

    root = None if args.root is None else str(args.root)
    options = _dataset_options(args, args.dataset)
    if args.report is None:
        return evaluate_run(run, dataset=args.dataset, root=root, dataset_options=options)
    from core.evaluate.report import write_report

    evaluation = evaluate_run(run, dataset=args.dataset, root=root, dataset_options=options,
                              gallery_dir=args.report / "gallery")
    files = write_report(evaluation, args.report, evaluation["gallery"])
    return {**evaluation, "report": files}


def _encoder(args: argparse.Namespace) -> dict[str, Any]:
    from core.runs.folder import open_run

    run = open_run(args.run)
    if not args.verbose:
        _import_keras_quietly()
    from core.evaluate.encoder_export import export_encoder

    return export_encoder(run, args.out)


def _jobs_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from core.experiments.jobs import list_jobs

    return [asdict(job) for job in list_jobs(args.root)]


def _jobs_cancel(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import asdict

    from core.experiments.jobs import cancel

    return asdict(cancel(args.job, args.root))


def _jobs_work(args: argparse.Namespace) -> dict[str, Any]:
    from core.experiments.jobs import work

    return {"jobs_run": work(args.root)}


def _jobs_run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.verbose:
        _import_keras_quietly()
    from dataclasses import asdict

    from core.experiments.jobs import run_job

    return asdict(run_job(args.job, args.root))


def _backbones(args: argparse.Namespace) -> list[dict[str, Any]]:
    if not args.verbose:
        _import_keras_quietly()
    from core.models.backbones import BACKBONES, backbone_facts

    return [backbone_facts(name) for name in BACKBONES]


# -- human-readable output -------------------------------------------------------------------------
def _render(document: dict[str, Any] | list[dict[str, Any]]) -> str:
    """A plain rendering of a result document for people; ``--json`` is for programs."""
    if isinstance(document, list):
        return "\n\n".join(_render(row) for row in document)
    lines = []
    for key, value in document.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"{key}: {inner}")
        elif isinstance(value, list):
            shown = ", ".join(map(str, value[:12])) + (" ..." if len(value) > 12 else "")
            lines.append(f"{key} ({len(value)}): {shown}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def _backbones_table(rows: list[dict[str, Any]]) -> str:
    """The backbones as one aligned table, and the folder ``imagenet`` reads from."""
    def weights(row: dict[str, Any]) -> str:
        if row["imagenet_file"] is None:
            return "none published"
        state = "installed" if row["imagenet_available"] else "missing"
        return f"{state}: {row['imagenet_file']}"

    table = [("backbone", "input", "min", "stride", "feature layer", "ImageNet weights")]
    table += [(row["name"], str(row["input_size"]), str(row["min_size"]), str(row["stride"]),
               row["feature_layer"], weights(row)) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1]
             for line in table]
    folders = sorted({str(Path(row["imagenet_path"]).parent) for row in rows
                      if row["imagenet_path"]})
    lines.append(f"imagenet looks in {', '.join(folders)}/ (set KERAS_HOME to move it); "
                 f"{DOWNLOAD_WEIGHTS_ENV}=1 lets Keras download a missing .h5 (online)")
    return "\n".join(lines)


# -- parser ------------------------------------------------------------------------------
def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _add_setting(parser: argparse.ArgumentParser, setting: Setting) -> None:
    """One training setting as an option, made from its knob (``core.runs.knobs``). Unset
    options are ``None`` and keep the config file's or the default's value."""
    knob = setting.knob
    only = f" ({' and '.join(knob.models)} only)" if knob.models else ""
    options: dict[str, Any] = {"dest": setting.name, "default": None, "help": knob.help + only}
    if setting.kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = knob.parse or setting.kind
        if knob.choices:
            options["choices"] = knob.choices
    parser.add_argument(setting.flag, **options)


def _dataset_option_owners() -> dict[str, tuple[DatasetOption, list[str]]]:
    """Every loader option by name, with the datasets that take it (one flag each)."""
    owners: dict[str, tuple[DatasetOption, list[str]]] = {}
    for dataset, loader in LOADERS.items():
        for option in loader.options:
            known, names = owners.setdefault(option.name, (option, []))
            if known != option:
                raise TypeError(f"two loaders declare option {option.name} differently")
            names.append(dataset)
    return owners


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """A flag per loader option (``core.data.options``), for whichever ``--dataset`` takes it."""
    for option, datasets in _dataset_option_owners().values():
        help_text = f"{' and '.join(datasets)} only: {option.help}"
        options: dict[str, Any] = {"dest": option.name, "default": None, "help": help_text}
        if option.kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = option.kind
            if option.choices:
                options["choices"] = option.choices
        parser.add_argument(option.flag, **options)


def _given_dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in _dataset_option_owners()
            if getattr(args, name, None) is not None}


def _dataset_options(args: argparse.Namespace, dataset: str | None) -> dict[str, Any]:
    """The loader options the command line gives for ``dataset`` (``dataset_options``)."""
    given = _given_dataset_options(args)
    if dataset is None:
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            raise BadConfigError(f"{flags}: a dataset's option(s), given without --dataset")
        return {}
    return dataset_options(dataset, given)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    for setting in SETTINGS.values():
        _add_setting(parser, setting)
    _add_dataset_options(parser)
    parser.add_argument("--config", type=Path, help="JSON file of training settings")
    parser.add_argument("--out", type=Path, help="folder for run folders (default: models/)")
    _add_json(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = commands.add_parser("data", help="inspect datasets and make synthetic films")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)

    summary = data_commands.add_parser("summary", help="count films, classes and what is missing")
    summary.add_argument("--dataset", choices=list(LOADERS), required=True)
    summary.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    summary.add_argument("--inverted", action=argparse.BooleanOptionalAction, default=None,
                         help="read every film and count those stored inverted (default: "
                         "on for " + ", ".join(name for name, kind in LOADERS.items()
                                                if kind.polarity_unknown)
                         + ", whose files do not mark them; 2,711 640-px JPEGs take ~10 s)")
    _add_dataset_options(summary)
    _add_json(summary)
    summary.set_defaults(handler=_data_summary)

    synth = data_commands.add_parser(
        "synth", help="write SYNTHETIC films and their Info.txt in the MIAS format")
    synth.add_argument("--out", type=Path, required=True, help="folder to write into")
    synth.add_argument("--n", type=_positive_int, default=70, help="number of films")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=_positive_int, default=1024, help="film side in pixels")
    _add_json(synth)
    synth.set_defaults(handler=_data_synth)

    train = commands.add_parser("train", help="train a model into a new run folder")
    _add_train_options(train)
    train.add_argument("--resume", type=Path, help="continue an interrupted run folder")
    train.set_defaults(handler=_train)

    sweep = commands.add_parser("sweep", help="train a grid of settings, one run each")
    _add_train_options(sweep)
    sweep.add_argument("--grid", action="append", required=True, metavar="NAME=V1,V2",
                       help="a setting and its values; repeat for more axes")
    sweep.add_argument("--sort-by", default=RANKED_BY,
                       help="validation figure to sort by: " + ", ".join(keys(VALIDATION)))
    sweep.set_defaults(handler=_sweep)

    cv = commands.add_parser("cv", help="patient-grouped k-fold cross-validation")
    _add_train_options(cv)
    cv.add_argument("--folds", type=_positive_int, default=5)
    cv.add_argument("--compare-splits", action="store_true",
                    help="run it twice, patient-grouped and film-level (the first paper's "
                    "protocol), and compare the two: the Runs page shows the pair")
    cv.set_defaults(handler=_cv)

    predict = commands.add_parser("predict", help="classify films with a run, with heatmaps")
    predict.add_argument("run", type=Path, help="a run folder")
    predict.add_argument("files", type=Path, nargs="*", metavar="FILE",
                         help="films: PGM, PNG, JPEG, TIFF or DICOM")
    predict.add_argument("--input", type=Path, action="append", default=[],
                         metavar="LIST_OR_FOLDER", help="every film below a folder, or those a "
                         "text file lists (one path a line); repeatable")
    predict.add_argument("--other", type=Path, action="append", default=[], metavar="FILE",
                         help="for a run trained with --both-breasts: the other breast (same "
                         "view) of each film, in the films' order; repeat once per film")
    predict.add_argument("--also", type=Path, action="append", default=[], metavar="RUN",
                         help="another run scoring with RUN, probabilities and heatmaps "
                              "averaged (an ensemble, e.g. a cv's fold models); repeatable")
    predict.add_argument("--out", type=Path, required=True,
                         help="folder for the heatmap PNGs (and, on Ray, the results table)")
    predict.add_argument("--dicom-out", type=Path, metavar="DIR",
                         help="also write, for each DICOM film, a Secondary Capture of its "
                         "overlay and an SR of its class probabilities, filed in the film's "
                         "study (research software, not for diagnosis)")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: score here and print one entry per film; ray: score on "
                         "Ray into a Parquet table that a rerun resumes (needs ray[data])")
    predict.add_argument("--address", metavar="ADDR",
                         help="with --engine ray: the Ray cluster to join (default: start Ray "
                         "on this machine)")
    predict.add_argument("--actors", type=_positive_int, metavar="N",
                         help="with --engine ray: model copies scoring at once (default: one "
                         "per CPU)")
    for setting in settings_of(OverlaySize).values():
        _add_setting(predict, setting)
    _add_json(predict)
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser("evaluate", help="a run's figures on its test split or "
                                   "on an external dataset")
    evaluate.add_argument("run", type=Path, help="a run folder")
    evaluate.add_argument("--dataset", choices=list(LOADERS),
                          help="an external test set's kind (with --root)")
    evaluate.add_argument("--root", type=Path, help="the external test set's folder")
    _add_dataset_options(evaluate)
    evaluate.add_argument("--report", type=Path, metavar="DIR",
                          help="also write JSON, CSV, PNG plots and an HTML page there")
    _add_json(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    encoder = commands.add_parser(
        "encoder", help="write a run's trained encoder to a .weights.h5 file that --weights "
                        "reads (start another dataset's run from it)")
    encoder.add_argument("run", type=Path, help="a finished run folder")
    encoder.add_argument("--out", type=Path, required=True, metavar="FILE",
                         help="the file to write, ending in .weights.h5")
    _add_json(encoder)
    encoder.set_defaults(handler=_encoder)

    backbones = commands.add_parser(
        "backbones", help="every encoder: input size, feature layer and stride, and whether "
                          "its ImageNet weights are installed")
    _add_json(backbones)
    backbones.set_defaults(handler=_backbones, render=_backbones_table)

    jobs = commands.add_parser("jobs", help="the training queue the app submits to")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, parser_class=_Parser)
    for name, handler, help_text in (
            ("list", _jobs_list, "every job, oldest first"),
            ("cancel", _jobs_cancel, "drop a queued job or stop a running one"),
            ("work", _jobs_work, "run queued jobs until none is left (one worker at a time)"),
            ("run", _jobs_run, "do one job in this process (what the worker starts)")):
        command = job_commands.add_parser(name, help=help_text)
        if name in ("cancel", "run"):
            command.add_argument("job", help="the job's id")
        command.add_argument("--root", type=Path, help="the runs folder (default: models/)")
        _add_json(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    handler: Handler = args.handler
    status = 0
    try:
        document = handler(args)
    except _NothingDone as failure:
        document, status = failure.document, USER_ERROR
        print(f"error: {' '.join(str(failure).split())}", file=sys.stderr)
    except MammoError as error:  # one line, whatever the message quotes (a file's content)
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return USER_ERROR
    except OSError as error:  # disk full, permission denied: the user's environment, not a bug
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return USER_ERROR
    try:
        render = getattr(args, "render", _render)
        print(json.dumps(document, indent=2) if args.json else render(document))
    except BrokenPipeError:  # `... | head`: the reader has gone, which is not an error
        sys.stderr.close()
    return status
