"""Check what the built wheel ships: the bundled data (with the Jurkat sample's license), py.typed,
no tests or docs."""

from __future__ import annotations

import sys
import zipfile

REQUIRED = (
    "cellvision/py.typed",
    "cellvision/data/AirQualityUCI.csv.gz",
    "cellvision/data/jurkat_sample.npz",
    "cellvision/data/JURKAT_LICENSE.txt",
    "cellvision/__init__.py",
)
FORBIDDEN_PREFIXES = ("tests/", "docs/", "examples/", "benchmarks/", "tools/")


def main() -> None:
    (path,) = sys.argv[1:]
    names = zipfile.ZipFile(path).namelist()
    missing = [name for name in REQUIRED if name not in names]
    extra = [name for name in names if name.startswith(FORBIDDEN_PREFIXES)]
    if missing or extra:
        raise SystemExit(f"wheel {path}: missing {missing}, unexpected {extra}")
    print(f"wheel {path}: {len(names)} files, bundled data and py.typed present")


if __name__ == "__main__":
    main()
