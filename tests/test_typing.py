"""Typing that works for users: ``mypy --strict`` on code that registers callbacks.

``typing_check/handlers_ok.py`` uses every callback API correctly and must
check clean; ``typing_check/handlers_bad.py`` gets each wrong, and mypy must
report exactly the errors its ``# E: [code]`` comments name, on those lines.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="needs mypy (pip install '.[dev]')")

CHECKS = Path(__file__).resolve().parent / "typing_check"
OK = CHECKS / "handlers_ok.py"
BAD = CHECKS / "handlers_bad.py"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
EXPECTED = re.compile(r"#\s*E:\s*\[([a-z-]+)\]")
REPORTED = re.compile(r"^(?P<path>.+?):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]\s*$")

Report = tuple[str, int, str]  # file name, line, error code


@pytest.fixture(scope="module")
def reported() -> list[Report]:
    """What mypy --strict reports on both files, in one run."""
    args = ["--strict", "--show-error-codes", "--no-pretty", "--no-error-summary"]
    args += ["--cache-dir", os.devnull]
    if PYPROJECT.is_file():  # a source checkout: its settings (python_version, overrides)
        args += ["--config-file", str(PYPROJECT)]
    stdout, stderr, _ = api.run([*args, str(OK), str(BAD)])
    assert not stderr, stderr
    reports: list[Report] = []
    for line in stdout.splitlines():
        found = REPORTED.match(line)
        assert found, f"unexpected mypy output: {line}"
        reports.append((Path(found["path"]).name, int(found["line"]), found["code"]))
    return reports


def test_correct_callbacks_check_clean(reported: list[Report]) -> None:
    assert [r for r in reported if r[0] != BAD.name] == []


def test_wrong_callbacks_are_reported(reported: list[Report]) -> None:
    expected = {
        (BAD.name, number, code)
        for number, text in enumerate(BAD.read_text().splitlines(), start=1)
        for code in EXPECTED.findall(text)
    }
    assert len(expected) >= 15
    assert {r for r in reported if r[0] == BAD.name} == expected
