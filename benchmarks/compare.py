"""Before and after a change, in one run: ``benchmarks/run.py --before PYTHON``.

Every contender that runs the project's Python code (pyclient.py, own_server.py) is
measured a second time with PYTHON, an interpreter whose libcoap_py is the baseline, as
"<contender> (before)", in the same rounds as the others. This module names those
contenders, finds out which code each interpreter imports, and writes the results.md
section that puts each contender's before and after side by side.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

BEFORE = " (before)"


def before(contender: str) -> str:
    """The name of a contender measured with the baseline interpreter."""
    return contender + BEFORE


def is_before(contender: str) -> bool:
    return contender.endswith(BEFORE)


def base(contender: str) -> str:
    """The contender a "(before)" one measures again; any other, itself."""
    return contender[: -len(BEFORE)] if is_before(contender) else contender


def with_before(
    contenders: tuple[str, ...], twinned: tuple[str, ...], before_first: bool = False
) -> tuple[str, ...]:
    """Each contender of `twinned` next to its "(before)" twin, after it (or, with
    before_first, ahead of it): the two run one after the other."""
    pairs = [((before(c), c) if before_first else (c, before(c))) if c in twinned else (c,)
             for c in contenders]  # fmt: skip
    return tuple(x for pair in pairs for x in pair)


def after_only(results: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """The results without the "(before)" contenders (the tables that compare with C)."""
    return {
        key: {c: runs for c, runs in per.items() if not is_before(c)}
        for key, per in results.items()
    }


# ---------------------------------------------------------------------------
# which code an interpreter runs

# Where an interpreter's libcoap_py is, and the source pip installed it from (pip
# writes direct_url.json for a local directory, editable or not).
PROBE = """\
import importlib.metadata, json, libcoap_py
try:
    url = json.loads(importlib.metadata.distribution("libcoap-py").read_text("direct_url.json"))
except Exception:
    url = {}
print(json.dumps({"file": libcoap_py.__file__, "url": (url or {}).get("url", "")}))
"""


@dataclass
class Package:
    """The libcoap_py one interpreter imports (python -I)."""

    python: str
    directory: Path
    label: str  # "commit 54db549 (/work/before-src)", or what --before-label said
    warning: str = ""  # the installed copy is not the source tree's code, ...


def probe(python: str, label: str | None = None) -> Package:
    """Which libcoap_py `python` imports and, when pip recorded its source tree and that
    is a git checkout, the tree's commit; SystemExit when it imports none."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(f"{python}: {exc}") from exc
    if done.returncode != 0:
        raise SystemExit(f"{python} cannot import libcoap_py: {done.stderr.strip()[-1000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    directory = Path(info["file"]).resolve().parent
    url = urlparse(str(info["url"]))
    tree = Path(unquote(url.path)) if url.scheme == "file" else None
    if tree is None and (directory.parent / "pyproject.toml").is_file():
        tree = directory.parent  # imported from a source tree itself
    commit, warning = source_state(directory, tree)
    if label is None:
        label = f"commit {commit} ({tree})" if commit else "unknown commit"
    return Package(python, directory, label, warning)


def git(tree: Path, *argv: str) -> str | None:
    """git's output, or None; read only (no index refresh: someone may work in the tree)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(["git", "-C", str(tree), *argv], capture_output=True, text=True, env=env)
    return done.stdout.strip() if done.returncode == 0 else None


def source_state(directory: Path, tree: Path | None) -> tuple[str | None, str]:
    """The source tree's commit (now: a non-editable install is a copy of an earlier
    moment), and a warning when the installed package's files differ from the tree's."""
    if tree is None or not tree.is_dir():
        return None, "its source tree is unknown"
    commit = git(tree, "rev-parse", "--short", "HEAD")
    if commit is None:
        return None, f"{tree} is not a git checkout"
    if git(tree, "status", "--porcelain", "--", "libcoap_py", "build_ffi.py", "setup.py"):
        commit += " with uncommitted changes"
    tracked = git(tree, "ls-files", "libcoap_py")
    stale = [
        name
        for name in (tracked or "").splitlines()
        if name.endswith((".py", ".c", ".h"))
        and not same_bytes(tree / name, directory / name[len("libcoap_py/") :])
    ]
    if stale:
        return commit, (
            f"the installed libcoap_py differs from {tree} in {len(stale)} file(s) "
            f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}): reinstall it"
        )
    return commit, ""


def same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


# ---------------------------------------------------------------------------
# the section


@dataclass
class Measure:
    """One number per round (None: that measurement failed) of a contender before and
    after, and of the reference (C) in the same rounds."""

    unit: str
    before: list[float | None]
    after: list[float | None]
    ref: list[float | None]
    ratios: bool = True  # False: values too small for a ratio to mean anything


@dataclass
class Row:
    scenario: str
    contender: str
    rate: Measure  # the scenario's headline: req/s, ms/run, MiB, ...
    cpu: Measure


def spread(values: list[float | None]) -> tuple[float, float, float] | None:
    xs = [x for x in values if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def paired(a: list[float | None], b: list[float | None]) -> float | None:
    """Median over the rounds of a / b within the same round."""
    ratios = [x / y for x, y in zip(a, b) if x is not None and y]
    return statistics.median(ratios) if ratios else None


def num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def median_range(s: tuple[float, float, float] | None) -> str:
    if s is None:
        return "failed"
    return num(s[0]) if s[1] == s[2] else f"{num(s[0])} ({num(s[1])}-{num(s[2])})"


def cells(m: Measure) -> str:
    b, a = spread(m.before), spread(m.after)
    if b is None or a is None:
        return f"{median_range(b)} | {median_range(a)} | | | | |"
    if not m.ratios:
        return f"{median_range(b)} | {median_range(a)} | - | - | - | - |"
    ratios = (
        a[0] / b[0] if b[0] > 0 else None,
        paired(m.after, m.before),
        paired(m.before, m.ref),
        paired(m.after, m.ref),
    )
    return f"{median_range(b)} | {median_range(a)} | " + " | ".join(map(ratio, ratios)) + " |"


def section(rows: list[Row], before_pkg: Package, after_pkg: Package) -> list[str]:
    """The "Before and after" section of results.md."""
    lines = [
        "## Before and after",
        "",
        f"- Before (baseline): {before_pkg.label}: libcoap_py of `{before_pkg.python}`"
        f" ({before_pkg.directory})",
        f"- After: {after_pkg.label}: libcoap_py of `{after_pkg.python}` ({after_pkg.directory})",
    ]
    for pkg, which in ((before_pkg, "Before"), (after_pkg, "After")):
        if pkg.warning:
            lines.append(f"- **{which}: {pkg.warning}**")
    lines += [
        "",
        'Each "(before)" contender runs right next to its after twin in every round, after',
        "it in even rounds, ahead of it in odd ones (the pairs take their places in the",
        "rotating order of the contenders), with this tree's benchmark scripts",
        "(pyclient.py, own_server.py) on both packages. Medians over the rounds, min-max",
        "in brackets (none: one value). After / before: the ratio of the two medians",
        "(throughput: above 1 is faster; ms/run, memory and CPU: below 1 is better); same",
        "round: the median of each round's own after / before ratio (the twins ran back to",
        "back: steadier when the machine's speed moves from round to round). x C: the",
        "median of each round's ratio to C (server: to coap-server-notls), as in the tables",
        'below. The "(before)" contenders are left out of the other tables and the chart;',
        "the service-ingest section is after only. Every measurement is in results.json.",
        "",
        "| Scenario | Contender | Unit | Before | After | After / before | same round "
        "| Before x C | After x C |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.scenario} | {r.contender} | {r.rate.unit} | {cells(r.rate)}" for r in rows]
    lines += [
        "",
        "CPU per operation (client's own; server: the server's), same rounds:",
        "",
        "| Scenario | Contender | Unit | Before | After | After / before | same round "
        "| Before x C | After x C |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.scenario} | {r.contender} | {r.cpu.unit} | {cells(r.cpu)}" for r in rows]
    return [*lines, ""]
