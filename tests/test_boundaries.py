"""Architecture rules checked with ``ast`` (STYLE.md §3)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mailproxy_core

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "mailproxy_core"
PLUGIN_SOURCES = [*ROOT.glob("plugins/*/src"), *ROOT.glob("mailproxy_ee/*/src")]


def imports(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(module, imported names, line) of every absolute import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names], node.lineno


def python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*.py") if ".venv" not in p.parts)


def test_plugins_import_only_the_public_kernel_api():
    public = set(mailproxy_core.__all__)
    problems = []
    for path in python_files(*PLUGIN_SOURCES):
        for module, names, line in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module.startswith("mailproxy_core."):
                problems.append(f"{where} imports private module {module}")
            elif module == "mailproxy_core":
                problems += [f"{where} imports non-public {n}" for n in names if n not in public]
    assert problems == []


def test_plugins_use_kernel_methods_not_its_repositories_or_database():
    """All SQL lives in the kernel's ``db/repos``; plugins go through ``MailProxy`` methods."""
    problems = []
    for path in python_files(*PLUGIN_SOURCES):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"repos", "db"}:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert problems == []


def test_kernel_never_imports_a_plugin():
    problems = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files(KERNEL)
        for module, _names, line in imports(path)
        if module.startswith("mailproxy_") and not module.startswith("mailproxy_core")
    ]
    assert problems == []


def test_databases_is_imported_only_by_the_db_package():
    problems = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in python_files(KERNEL, *PLUGIN_SOURCES)
        for module, _names, line in imports(path)
        if module.split(".")[0] == "databases" and "db" not in path.relative_to(KERNEL.parent).parts
    ]
    assert problems == []


def test_public_api_names_exist():
    for name in mailproxy_core.__all__:
        assert hasattr(mailproxy_core, name), name
