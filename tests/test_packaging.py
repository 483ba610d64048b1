"""Every distribution's wheel carries all of its packages and data files.

The tests run against editable installs, which import straight from the source tree, so a
subpackage left out of a distribution's package list would pass every other test and break the
first operator who installs a wheel. These tests build the real wheels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DISTRIBUTIONS = [
    (ROOT, [ROOT / "mailproxy_core", ROOT / "mailproxy_cli"]),
    *(
        (pyproject.parent, sorted((pyproject.parent / "src").iterdir()))
        for pyproject in sorted(
            [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("mailproxy_ee/*/pyproject.toml")]
        )
    ),
]


def _expected_files(package_roots: list[Path]) -> set[str]:
    """Every file of every package under ``package_roots``: modules, markers, templates, assets."""
    expected: set[str] = set()
    for package in package_roots:
        if not (package / "__init__.py").is_file():
            continue  # egg-info and the like
        base = package.parent
        for path in package.rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            expected.add(path.relative_to(base).as_posix())
    return expected


_NOT_SOURCES = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "tests")


def _clean_copy(project: Path, package_roots: list[Path], into: Path) -> Path:
    """``project``'s sources alone, so no build/ left by an earlier build can fill a gap."""
    target = into / (project.name if project != ROOT else "mailproxy-core")
    if project == ROOT:
        target.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(project / name, target / name)
        for package in package_roots:
            shutil.copytree(package, target / package.name, ignore=_NOT_SOURCES)
    else:
        shutil.copytree(project, target, ignore=_NOT_SOURCES)
    return target


def test_every_wheel_holds_every_module(tmp_path: Path):
    sources = tmp_path / "sources"
    sources.mkdir()
    copies = [_clean_copy(project, roots, sources) for project, roots in DISTRIBUTIONS]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(tmp_path),
            *(str(copy) for copy in copies),
        ],
        check=True,
        capture_output=True,
    )
    wheels = {wheel.name.split("-")[0]: wheel for wheel in tmp_path.glob("*.whl")}
    assert len(wheels) == len(DISTRIBUTIONS)
    missing: dict[str, list[str]] = {}
    for wheel in wheels.values():
        with zipfile.ZipFile(wheel) as archive:
            shipped = set(archive.namelist())
        roots = {name.split("/")[0] for name in shipped}
        for _project, package_roots in DISTRIBUTIONS:
            if {p.name for p in package_roots if (p / "__init__.py").is_file()} <= roots:
                lacking = sorted(_expected_files(package_roots) - shipped)
                if lacking:
                    missing[wheel.name] = lacking
    assert missing == {}
