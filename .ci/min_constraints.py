"""Print pip constraints pinning each core dependency at its declared minimum.

``numpy>=1.24`` in pyproject.toml becomes ``numpy==1.24.*``, so the CI step that uses
these constraints tests exactly what the package declares.  torch is left out: the only
torch build CI can install offline is the CPU wheel the test command installs first
(``torch==2.13.0``); PyPI's Linux builds of older releases carry several GB of CUDA
libraries.
"""

import re
import sys
import tomllib
from pathlib import Path

UNTESTED = {"torch"}


def main() -> int:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)", dep.split(";")[0].strip())
        if match is None:
            print(f"min_constraints: cannot read a minimum from {dep!r}", file=sys.stderr)
            return 1
        name, version = match.groups()
        if name not in UNTESTED:
            print(f"{name}=={version}.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
