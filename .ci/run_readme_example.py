"""Run the README's marked Python example (used by `make wheel` against the installed wheel)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

MARKER = "<!-- readme-example"


def main() -> None:
    text = Path(sys.argv[1]).read_text(encoding="utf-8")
    after = text.split(MARKER, 1)[1]
    match = re.search(r"```python\n(.*?)```", after, flags=re.S)
    if match is None:
        raise SystemExit("README.md has no ```python block after the readme-example marker")
    code = match.group(1)
    print(f"running the README example ({len(code.splitlines())} lines)", flush=True)
    exec(compile(code, "README.md example", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
