"""Shared pieces of the ``cellvision`` subcommands: help formatting and progress output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["EpochProgress", "HelpFormatter"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the description's layout and show each option's default once.

    A default is appended as ``(default: X)`` unless the help text already mentions a
    default, the default is ``None``/``False`` (flags and "not given" options) or suppressed.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    >>> _ = p.add_argument("--epochs", type=int, default=3, help="training epochs")
    >>> _ = p.add_argument("--data-dir", help="folder (default: synthetic cells)")
    >>> text = p.format_help()
    >>> "training epochs (default: 3)" in text, "(default: None)" in text
    (True, False)
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.option_strings == []
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


class EpochProgress:
    """One progress report per epoch: a tqdm bar on a terminal, else one line per epoch.

    Parameters
    ----------
    stream : text stream, optional
        Where the lines go (default: standard output).
    use_bar : bool, optional
        Force the bar on or off; default: a bar when ``stream`` is a terminal and tqdm (the
        ``progress`` extra) is installed.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> progress = EpochProgress(out)
    >>> progress.start("model", 2)
    >>> progress.epoch(1, "loss 0.5")
    >>> progress.close()
    >>> out.getvalue()
    'model epoch   1/2: loss 0.5\\n'
    """

    def __init__(self, stream: TextIO | None = None, *, use_bar: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if use_bar is None:
            use_bar = bool(getattr(self.stream, "isatty", lambda: False)())
        self._make_bar: Callable[..., Any] | None = None
        if use_bar:
            try:
                from tqdm.auto import tqdm

                self._make_bar = tqdm
            except ImportError:
                self._make_bar = None
        self._bar: Any = None
        self.name, self.total = "", 0

    def start(self, name: str, total: int) -> None:
        """Begin reporting ``total`` epochs of ``name``."""
        self.close()
        self.name, self.total = name, total
        if self._make_bar is not None:
            self._bar = self._make_bar(total=total, desc=name, unit="epoch", file=self.stream)

    def epoch(self, epoch: int, text: str) -> None:
        """Report epoch ``epoch`` (counted from 1) with a short summary ``text``."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        else:
            print(
                f"{self.name} epoch {epoch:3d}/{self.total}: {text}", file=self.stream, flush=True
            )

    def close(self) -> None:
        """Finish the current bar (if any)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
