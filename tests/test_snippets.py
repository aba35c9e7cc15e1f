"""Issue 20, problem 8: every Python snippet and every ``condense`` command in the README and
the docs runs as written (in a temporary folder, with the settings the page shows).

Blocks of one page share a namespace, in page order, as a reader would paste them.
A ```python block whose first line is ``# not run`` is skipped (none should need it).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def python_pages() -> list[Path]:
    return [p for p in PAGES if any(not b.startswith("# not run") for b in blocks(p, "python"))]


def command_lines() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for body in blocks(page, "bash"):
            for line in body.splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("condense "):
                    out.append((page.relative_to(ROOT).as_posix(), line))
    return out


def test_the_pages_have_snippets():
    assert len(python_pages()) >= 4 and len(command_lines()) >= 8
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


@pytest.mark.slow
@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__snippet__"}
    for body in blocks(page, "python"):
        if body.startswith("# not run"):
            continue
        exec(compile(body, f"{page.name} snippet", "exec"), namespace)  # noqa: S102 - our own docs


@pytest.mark.slow
@pytest.mark.parametrize("page_and_line", command_lines(), ids=lambda pl: pl[1][:60])
def test_command_lines_run(page_and_line, tmp_path, monkeypatch):
    from condense.cli import main

    page, line = page_and_line
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(line)[1:]
    if argv[0] in ("evaluate", "show"):  # they read the set the page's distill line writes
        assert main(["distill", "--data", "digits", "--method", "dm", "--ipc", "10", "--steps", "5",
                     "--param", "batch_real=16", "--out", argv[1], "--quiet"]) == 0
    assert main(argv) == 0, f"{page}: {line}"
