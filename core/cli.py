"""``python -m core``: the command line over the library.

Contract (the app, CI and scripts rely on it): every subcommand accepts ``--json`` and then
prints exactly one JSON document on stdout; logs go to stderr; a user's mistake (bad path,
bad film, bad option) prints one line on stderr and exits with status 2, never a traceback.
A traceback means a bug in this package.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from core.errors import MammoError

log = logging.getLogger("core")

USER_ERROR = 2

Handler = Callable[[argparse.Namespace], dict[str, Any]]


class _Parser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a mistake; we promise one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"error: {message} (see `{self.prog} --help`)\n")


# -- commands ----------------------------------------------------------------------------------
def _data_summary(args: argparse.Namespace) -> dict[str, Any]:
    from core.data import load_dataset

    options = {}
    if args.dataset == "cbis":
        options = {"abnormality": args.abnormality, "mode": args.mode}
    return load_dataset(args.dataset, args.root, **options).summary()


def _data_synth(args: argparse.Namespace) -> dict[str, Any]:
    from core.data import load_dataset
    from core.data.synthetic import generate

    out = generate(args.out, n=args.n, seed=args.seed, size=args.size)
    summary = load_dataset("mias", out).summary()
    return {"out": str(out), "seed": args.seed, "size": args.size, **summary}


# -- human-readable output -------------------------------------------------------------------------
def _render(document: dict[str, Any]) -> str:
    """A plain rendering of a result document for people; ``--json`` is for programs."""
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


# -- parser ------------------------------------------------------------------------------------------
def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = commands.add_parser("data", help="inspect datasets and make synthetic films")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)

    summary = data_commands.add_parser("summary", help="count films, classes and what is missing")
    summary.add_argument("--dataset", choices=["mias", "cbis", "folder"], required=True)
    summary.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    summary.add_argument("--abnormality", choices=["calc", "mass", "both"], default="calc",
                         help="CBIS-DDSM only: which description files to use")
    summary.add_argument("--mode", choices=["film", "crop"], default="film",
                         help="CBIS-DDSM only: whole films or lesion crops")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    handler: Handler = args.handler
    try:
        document = handler(args)
    except MammoError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR
    except OSError as error:  # disk full, permission denied: the user's environment, not a bug
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return USER_ERROR
    try:
        print(json.dumps(document, indent=2) if args.json else _render(document))
    except BrokenPipeError:  # `... | head`: the reader has gone, which is not an error
        sys.stderr.close()
    return 0
