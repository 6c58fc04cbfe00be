"""PLACEHOLDER for ``cellvision benzene`` (the forecasting helper's branch replaces this file).

It follows the contract of :mod:`cellvision.cli`: :func:`add_parser` registers the ``benzene``
subcommand with ``set_defaults(func=run)`` and :func:`run` returns an exit status. Until the
forecasting recipe is merged, :func:`run` only raises ``ValueError("not available yet")``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """Register ``cellvision benzene`` (placeholder) on ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "benzene",
        help="month-fold benzene forecasting study (not available yet)",
        description="Month-fold benzene forecasting study (placeholder: not available yet).",
        formatter_class=formatter_class,
    )
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Placeholder: always raises ``ValueError``."""
    raise ValueError("not available yet")
