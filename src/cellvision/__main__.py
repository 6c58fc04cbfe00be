"""``python -m cellvision``: the ``cellvision`` command (:func:`cellvision.cli.main`)."""

from __future__ import annotations

import sys

from cellvision.cli import main

if __name__ == "__main__":
    sys.exit(main())
