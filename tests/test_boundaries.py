"""Architecture rules checked with ``ast``: plugin boundaries and the kernel's layers."""

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


# -- the kernel's layers -------------------------------------------------------------------------

LAYERS: dict[str, int] = {
    # values and contracts, then configuration: import nothing of the layers above
    "errors": 0,
    "models": 0,
    "events": 0,
    "protocols": 1,
    "specs": 1,
    "crypto": 1,
    "message_ids": 1,
    "pacing": 1,
    "settings": 2,
    "logs": 3,
    # storage, then the records loaded from it; the plugin machinery
    "db": 4,
    "records": 5,
    "plugins": 5,
    # the loops and the API, side by side: neither imports the other
    "dispatch": 6,
    "api": 6,
    "entities": 7,
}
"""Each kernel package or module, by layer: a module may import (at run time) only from a lower
layer or its own package. ``kernel.py`` is the composition root above them all, with ``app``,
``server``, ``cli``, ``builtin`` and ``testing``; annotations (``if TYPE_CHECKING:``) may name
anything."""

UNLAYERED = {"kernel", "app", "server", "cli", "builtin", "testing", "__init__", "__main__"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def runtime_imports(path: Path, module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported kernel module, line, under TYPE_CHECKING) of every relative import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    checking: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            checking.update(id(inner) for child in node.body for inner in ast.walk(child))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            yield target, node.lineno, id(node) in checking


def kernel_modules() -> Iterator[tuple[Path, str]]:
    for path in python_files(KERNEL):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def test_kernel_layers_import_only_downwards():
    problems = []
    for path, module in kernel_modules():
        own = _part(module)
        if own in UNLAYERED:
            continue
        assert own in LAYERS, f"{module}: add its package to LAYERS in this test"
        for target, line, annotation_only in runtime_imports(path, module):
            other = _part(target)
            if annotation_only or other == own:
                continue
            if other in UNLAYERED or LAYERS.get(other, 0) >= LAYERS[own]:
                problems.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target}")
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_values_and_specs_name_nothing_of_the_api_even_in_annotations():
    problems = []
    for path, module in kernel_modules():
        if _part(module) not in {"models", "specs", "protocols", "events", "errors", "records"}:
            continue
        for target, line, _ in runtime_imports(path, module):
            if _part(target) in {"api", "entities", "dispatch"}:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not problems, "\n".join(problems)
