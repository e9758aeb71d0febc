"""Score an archive of films on Ray: ``python -m core predict RUN --input DIR --engine ray``.

Scoring 50,000 films is the same work as scoring one, many times over, so this module adds
no scoring of its own: a pool of Ray actors (``_FilmScorer``) each loads the run's model
once and passes batches of film paths to ``predict_films``, the one place that says how a
film is read, prepared, scored and overlaid. Ray Data (``ray.data.from_items`` +
``map_batches`` over a fixed-size ``ActorPoolStrategy``) streams the batches to the actors and their
rows back; this process writes each batch's rows as one part file of the results table as
it arrives (``core.evaluate.score_table``: layout, columns, resuming). Ray is the scheduler;
we write none.

An ensemble (``also``: several runs whose answers are averaged, as ``predict_films``
averages them) is scored the same way, each actor holding every run's model; the table
names the runs, so resuming it takes the same runs.

Resuming is by the table: films already in it are not sent again (a bad film's row, with
its error, counts as scored: a corrupt file stays corrupt). A bad film is one row with its
error, as ``predict`` gives it; the rest of its batch is scored.

Where it runs: with no address, Ray starts on this machine with one CPU per actor and
stops when scoring ends (no dashboard, worker logs not copied to this terminal). With an
address (``ray://head:10001`` or ``head:6379``) it joins that cluster, whose nodes must
have this package installed and see the run, the films and the output folder at the same
paths (a shared file system): the actors read films and write overlays where they run.

Ray is imported only here and only when needed, so the command line and local ``predict``
work without it; without it this engine is one line saying how to install it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.atomic import make_folder
from core.errors import BadConfigError
from core.evaluate import score_table
from core.evaluate.evaluate import run_settings
from core.evaluate.film_list import absolute, unique
from core.evaluate.predict import BATCH, loaded_ensemble, predict_films
from core.runs.folder import Run, open_run

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ray[data]'"
#: Seconds between progress lines on stderr while an archive is scored.
PROGRESS_EVERY_S = 30.0


def _ray() -> Any:
    """The ``ray`` module with Ray Data, or one ``BadConfigError`` saying how to install it."""
    try:
        import ray
        import ray.data  # Ray Data is a separate extra of the ray package
    except ImportError:
        raise BadConfigError(f"the Ray engine needs Ray Data: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                verbose: bool = False) -> Iterator[Any]:
    """Ray, connected: to the cluster at ``address``, or else to a Ray started here with
    ``num_cpus`` CPUs (default: this machine's) and stopped on leaving. A Ray this process
    already started (a notebook, a test) is used as it is and left running."""
    ray = _ray()
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports over the network
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": verbose,
                               "logging_level": logging.INFO if verbose else logging.ERROR}
    if address is None:
        options["num_cpus"] = num_cpus or os.cpu_count() or 1
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise BadConfigError(f"cannot start {where} ({' '.join(str(error).split())})") \
            from None
    try:
        data_context = ray.data.DataContext.get_current()
        data_context.enable_progress_bars = verbose
        if not verbose:
            logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One TCP connection to a ``host:port`` or ``ray://host:port`` address, so a mistyped
    address or a cluster that is down is one line now: Ray itself retries it for minutes,
    printing warnings. Other forms (``auto``, other schemes) are left to Ray."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "ray") or address == "auto":
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise BadConfigError(f"Ray address {address}: expected host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise BadConfigError(f"cannot reach the Ray cluster at {address} "
                             f"({error.strerror or error})") from None


class _FilmScorer:
    """A Ray Data actor: the run's model loaded once, then batches of film paths scored by
    ``predict_films`` and turned into rows of the results table."""

    def __init__(self, run_paths: list[str], out: str, classes: tuple[str, ...],
                 synthetic: bool) -> None:
        self.run_paths, self.out = run_paths, Path(out)
        self.classes, self.synthetic = classes, synthetic
        loaded_ensemble(run_paths[0], run_paths[1:])  # the models, once per actor

    def __call__(self, batch: pa.Table) -> pa.Table:
        entries = predict_films(self.run_paths[0], batch.column("file").to_pylist(),
                                self.out / score_table.OVERLAYS, also=self.run_paths[1:])
        return score_table.entries_table(entries, self.classes, _scored_by(self.run_paths),
                                         self.out, self.synthetic)


def _scored_by(run_paths: Sequence[str]) -> str:
    """What a table records as the runs that scored it: the run, or an ensemble's runs one a
    line (a rerun must name the same runs in the same order)."""
    return "\n".join(run_paths)


def score_archive(run: Run | str | Path, films: Sequence[str | Path], out_dir: str | Path, *,
                  address: str | None = None, actors: int | None = None,
                  batch_size: int = BATCH, verbose: bool = False,
                  also: Sequence[Run | str | Path] = ()) -> dict[str, Any]:
    """Score ``films`` with ``run`` into the table and overlays in ``out_dir``, skipping films
    the table already holds; ``actors`` model copies score at once (default: one per CPU of
    the cluster). Returns what was done: how many films were given, already scored, scored
    now and failed now, the time taken and films per second. ``also``: more runs scoring
    with ``run`` as one ensemble (``predict_films``); each actor then holds all of them.

    A run that cannot be loaded, or a table scored by another run, stops the call before
    any film is scored, with one ``BadConfigError``.
    """
    if actors is not None and actors < 1:
        raise BadConfigError(f"the number of actors must be at least 1, got {actors}")
    if batch_size < 1:
        raise BadConfigError(f"the batch size must be at least 1, got {batch_size}")
    _ray()  # a missing Ray is said up front, even when nothing is left to score
    run = run if isinstance(run, Run) else open_run(run)
    members = [item if isinstance(item, Run) else open_run(item) for item in also]
    run_paths = [str(absolute(item.path)) for item in (run, *members)]
    scored_by = _scored_by(run_paths)
    settings = run_settings(run)
    if settings.config.both_breasts:  # its films would each be read against itself
        raise BadConfigError(f"{run.path}: this run reads each film beside the other breast, "
                             "and archive scoring does not pair films; score with --engine "
                             "local and --other")
    out = absolute(out_dir)
    make_folder(out / score_table.SCORES, "scores table folder")
    make_folder(out / score_table.OVERLAYS, "overlay folder")
    films = unique(absolute(film) for film in films)

    table = score_table.read_scores(out, scored_by)  # another run's table stops us here
    score_table.clear_debris(out, table)  # what a killed run left half done
    done = set() if table is None else set(table.column("file").to_pylist())
    todo = [str(film) for film in films if str(film) not in done]
    summary: dict[str, Any] = {"engine": "ray", "table": str(out / score_table.SCORES),
                               "overlays": str(out / score_table.OVERLAYS),
                               "films": len(films), "already_scored": len(films) - len(todo),
                               "scored": 0, "failed": 0, "actors": 0, "seconds": 0.0,
                               "films_per_second": None}
    if todo:
        loaded_ensemble(run, members)  # a damaged or mismatched model is one line here
        started = time.perf_counter()
        with ray_session(address, actors, verbose) as ray:
            batches = -(-len(todo) // batch_size)
            pool = min(actors or int(ray.cluster_resources().get("CPU", 1)) or 1, batches)
            # One block a batch: Ray hands a block to one actor, so a single block of
            # every film would leave all actors but one idle.
            films_in = ray.data.from_items([{"file": film} for film in todo],
                                           override_num_blocks=batches)
            dataset = films_in.map_batches(
                _FilmScorer, batch_size=batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=1,
                fn_constructor_kwargs={"run_paths": run_paths, "out": str(out),
                                       "classes": settings.classes,
                                       "synthetic": settings.synthetic})
            columns = score_table.schema(settings.classes, scored_by)
            told = started
            for rows in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                score_table.write_part(out, rows, columns)
                summary["scored"] += rows.num_rows
                summary["failed"] += rows.num_rows - rows.column("error").null_count
                if time.perf_counter() - told > PROGRESS_EVERY_S:
                    told = time.perf_counter()
                    log.info("%d of %d films scored (%d failed)", summary["scored"],
                             len(todo), summary["failed"])
        seconds = time.perf_counter() - started
        summary.update(actors=pool, seconds=round(seconds, 2),
                       films_per_second=round(summary["scored"] / seconds, 2))
    score_table.compact(out)
    score_table.clear_debris(out, score_table.read_scores(out, scored_by))
    return summary
