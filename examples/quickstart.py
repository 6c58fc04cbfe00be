"""Build every registered model with its defaults and print its parameter count.

Run ``python examples/quickstart.py --help`` for options.
"""

from __future__ import annotations

import argparse

import cellvision
from cellvision.models import create_model, list_models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pattern", default=None, help="only models matching this pattern")
    args = parser.parse_args(argv)
    print(f"cellvision {cellvision.__version__}")
    for name in list_models(args.pattern):
        model = create_model(name)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name:24s} {n_params:>12,d} parameters")


if __name__ == "__main__":
    main()
