"""Every Python snippet of the README and of the documentation runs as written.

The snippets of one page run in order, in one namespace (a later block may use what an
earlier one defined), in a temporary working directory, so a newcomer can paste them.
A snippet that cannot run here (it needs a GPU, a Dask cluster or several processes)
is marked right above it, with the reason: ``<!-- not-run: reason -->`` in Markdown,
``.. not-run: reason`` (an RST comment) in reStructuredText.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.rst",
         *sorted((ROOT / "docs" / "user_guide").glob("*.rst"))]

_MD_BLOCK = re.compile(r"(?:<!-- not-run: (?P<why>[^>]*?) -->\n)?```python\n(?P<code>.*?)```",
                       re.S)
_RST_BLOCK = re.compile(
    r"(?:\.\. not-run: (?P<why>[^\n]*)\n\n)?\.\. code-block:: python\n\n"
    r"(?P<code>(?:(?: {3}[^\n]*)?\n)+)")


def snippets(page: Path) -> list[tuple[str, str | None]]:
    """``(code, reason not to run or None)`` of each Python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    if page.suffix == ".md":
        return [(m["code"], m["why"]) for m in _MD_BLOCK.finditer(text)]
    return [("\n".join(line[3:] for line in m["code"].splitlines()) + "\n", m["why"])
            for m in _RST_BLOCK.finditer(text)]


def test_snippets_are_found():
    # guards the parsers above: they must see the blocks they are meant to run
    readme = snippets(ROOT / "README.md")
    assert len(readme) >= 4 and all(why is None for _, why in readme)
    assert any("PIDDistiller(" in code for code, _ in readme)
    methods = snippets(ROOT / "docs" / "user_guide" / "methods.rst")
    assert any("PIDDistiller(" in code for code, _ in methods)
    assert len(PAGES_WITH_CODE) >= 6
    scaling = snippets(ROOT / "docs" / "user_guide" / "scaling.rst")
    assert scaling and all(why for code, why in scaling if "cuda" in code)


PAGES_WITH_CODE = [p for p in PAGES if snippets(p)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE,
                         ids=[p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE])
def test_page_snippets_run(page, tmp_path, monkeypatch):
    blocks = snippets(page)
    runnable = [code for code, why in blocks if why is None]
    skipped = [why for _, why in blocks if why is not None]
    assert all(why.strip() for why in skipped), "a not-run mark needs its reason"
    assert runnable, f"{page.name}: every Python snippet is marked not-run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__snippet__"}
    for i, code in enumerate(runnable):
        try:
            exec(compile(code, f"{page.name}[python block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block: the traceback alone shows only exec
            raise AssertionError(f"{page.relative_to(ROOT)}: python block {i} failed: "
                                 f"{type(exc).__name__}: {exc}\n{code}") from exc
    assert os.getcwd() == str(tmp_path)
