"""The ``cellvision`` command: thin argument parsing over :mod:`cellvision.recipes`.

Subcommands::

    cellvision cellcycle train [--data-dir DIR] [--test-dir DIR] [--quick] [--out DIR]
    cellvision cellcycle cv [--data-dir DIR] [--folds 5]
    cellvision cellcycle predict --checkpoint FILE [--data-dir DIR] [--out FILE.csv]
    cellvision benzene [--quick] ...
    cellvision sweep {cellcycle,benzene} [--n-trials N] [--timeout S] [--storage URL]

Every subcommand registers itself with ``add_parser(subparsers, formatter_class)`` and
``set_defaults(func=...)``; :func:`main` parses and calls ``args.func(args)``. Bad input ends
with ``cellvision: error: <one line>`` on standard error and exit status 2, without a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cellvision.cli import benzene, cellcycle, sweep
from cellvision.cli._common import HelpFormatter

__all__ = ["build_parser", "main"]

#: Exceptions that mean "bad input or missing optional package", reported in one line.
_USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError)


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``cellvision`` parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
        The parser; ``parse_args`` gives a namespace whose ``func`` runs the subcommand.

    Examples
    --------
    >>> parser = build_parser()
    >>> args = parser.parse_args(["cellcycle", "train", "--quick"])
    >>> args.func.__name__, args.quick, str(args.out)
    ('run_train', True, 'runs/cellcycle-train')
    """
    from cellvision import __version__

    parser = argparse.ArgumentParser(
        prog="cellvision",
        description="cellvision studies from the command line (see `cellvision COMMAND --help`).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cellvision {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    cellcycle.add_parser(subparsers, HelpFormatter)
    benzene.add_parser(subparsers, HelpFormatter)
    sweep.add_parser(subparsers, HelpFormatter)
    return parser


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(text).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cellvision`` command with ``argv`` (default: ``sys.argv[1:]``).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name.

    Returns
    -------
    int
        The exit status: 0 on success, 2 on bad input (argparse's usage errors included).

    Examples
    --------
    >>> main(["cellcycle", "train", "--epochs", "0", "--no-progress"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = args.func(args)
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except _USER_ERRORS as exc:
        print(f"cellvision: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellvision: interrupted", file=sys.stderr)
        return 130
    return int(status)
