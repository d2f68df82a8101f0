"""Imports point down the layers, and one module decides embedded vs Redis.

    cli.py, workers/         application: parse, supervise, serve the process entries
          |  import
          v
    dispatcher/              library: client, engine, backends and everything below

The library never imports the application layer, so it can be used (and tested) without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dispatcher"
APPLICATION_MODULES = ("workers", "cli")
# The only library module that looks at redis_url to choose backends; config/ defines,
# loads and validates the setting.
DECIDES_BACKENDS = LIBRARY / "backends.py"


def library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, at the top or inside a function."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return sorted(found)


def test_the_library_has_modules_to_check():
    assert len(library_files()) > 50


def test_library_never_imports_the_application_layer():
    upward = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in library_files()
        for line, module in imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if module.split(".")[0] in APPLICATION_MODULES
    ]
    assert upward == [], "the library (dispatcher/) must not import workers/ or cli.py:\n" + "\n".join(upward)


def redis_url_reads(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "redis_url"
    ]


def test_only_the_backends_module_reads_redis_url():
    """Embedded or Redis is decided once (dispatcher/backends.py); the rest asks the bundle."""
    files = [*library_files(), *(ROOT / "workers").rglob("*.py"), ROOT / "cli.py"]
    readers = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        if path != DECIDES_BACKENDS and LIBRARY / "config" not in path.parents
        for line in redis_url_reads(path)
    ]
    assert readers == [], "read .redis_url only in dispatcher/backends.py:\n" + "\n".join(readers)
    assert redis_url_reads(DECIDES_BACKENDS), "the check above looks for the wrong name"
