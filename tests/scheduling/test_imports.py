"""The scheduling policy decides and reads nothing: at run time it imports no other part of
the library (store/, client/ and the engine call it, not the reverse), and even for type
hints it never looks at the engine, the client or the application layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dispatcher" / "scheduling"
PRIORITY = ROOT / "dispatcher" / "priority.py"
RUN_TIME_ALLOWED = ("dispatcher.scheduling", "dispatcher.priority")
NEVER = ("dispatcher.engine", "dispatcher.client", "cli", "workers")


def imports(path: Path, *, type_only_too: bool) -> list[tuple[int, str]]:
    """(line, module) of the imports of a file, optionally skipping ``if TYPE_CHECKING:``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (not type_only_too and isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_scheduling_imports_only_itself_and_the_priority_levels_at_run_time():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 4
    found = [
        f"{path.name}:{line}: {module}"
        for path in files
        for line, module in imports(path, type_only_too=False)
        if within(module, ("dispatcher",)) and not within(module, RUN_TIME_ALLOWED)
    ]
    assert found == [], "import other modules only under TYPE_CHECKING:\n" + "\n".join(found)


def test_scheduling_never_names_the_engine_the_client_or_the_application():
    found = [
        f"{path.name}:{line}: {module}"
        for path in sorted(PACKAGE.glob("*.py"))
        for line, module in imports(path, type_only_too=True)
        if within(module, NEVER)
    ]
    assert found == [], "\n".join(found)


def test_the_priority_levels_do_not_depend_on_the_scheduling_policy():
    assert not [m for _, m in imports(PRIORITY, type_only_too=True) if within(m, ("dispatcher",))]
