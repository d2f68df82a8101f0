"""Structure figures of one llm-dispatcher tree (issue 12's before/after figures).

    python bench/structure.py /tmp/ab_old     (a worktree of the commit before)
    python bench/structure.py .

Reads files only (ast), imports nothing from the tree. Sections:
  1. files and lines per package (dispatcher/ subpackages, dispatcher top-level modules,
     workers/, cli.py or cli/)
  2. the 15 longest functions
  3. class Engine in dispatcher/engine/engine.py: methods and self.X attributes; then every
     class in dispatcher/engine/*.py with its method and attribute counts
  4. imports in dispatcher/ that point up to workers or cli
  5. places outside dispatcher/config/ that read redis_url or test for it
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

LONGEST = 15


def source_files(tree: Path) -> list[Path]:
    """The product code: dispatcher/, workers/, and cli.py or a cli/ package."""
    files = sorted((tree / "dispatcher").rglob("*.py")) + sorted((tree / "workers").rglob("*.py"))
    if (tree / "cli.py").exists():
        files.append(tree / "cli.py")
    files += sorted((tree / "cli").rglob("*.py")) if (tree / "cli").is_dir() else []
    return files


def package_of(path: Path, tree: Path) -> str:
    parts = path.relative_to(tree).parts
    if parts[0] == "dispatcher":
        return "dispatcher/" + parts[1] if len(parts) > 2 else "dispatcher (top-level modules)"
    if parts[0] in ("workers", "cli") and len(parts) > 1:
        return parts[0] + "/"
    return parts[0]


def code_lines(text: str) -> int:
    """Lines that are neither blank nor a comment (docstrings still count)."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def report_packages(tree: Path, files: list[Path]) -> None:
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for path in files:
        text = path.read_text()
        row = rows[package_of(path, tree)]
        row[0] += 1
        row[1] += len(text.splitlines())
        row[2] += code_lines(text)
    print("## Files and lines per package")
    print(f"{'package':40} {'files':>5} {'lines':>7} {'code':>7}")
    for name in sorted(rows):
        files_count, lines, code = rows[name]
        print(f"{name:40} {files_count:5} {lines:7} {code:7}")
    totals = [sum(row[i] for row in rows.values()) for i in range(3)]
    print(f"{'total':40} {totals[0]:5} {totals[1]:7} {totals[2]:7}")
    print("(code = lines neither blank nor a comment)\n")


def functions_in(module: ast.Module):
    """(qualified name, node) of every function, nested ones named through their parents."""
    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)
    yield from walk(module, "")


def report_longest_functions(tree: Path, parsed: dict[Path, ast.Module]) -> None:
    found = []
    for path, module in parsed.items():
        for name, node in functions_in(module):
            length = node.end_lineno - node.lineno + 1
            found.append((length, f"{path.relative_to(tree)}:{node.lineno}", name))
    found.sort(key=lambda item: (-item[0], item[1]))
    print(f"## The {LONGEST} longest functions (def line to last line)")
    for length, where, name in found[:LONGEST]:
        print(f"{length:5}  {where}  {name}")
    print()


def self_attributes(cls: ast.ClassDef) -> set[str]:
    """Names X of every self.X assigned (=, annotated, augmented, unpacked) in the class."""
    names = set()
    for node in ast.walk(cls):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if (isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name)
                        and part.value.id == "self" and isinstance(part.ctx, ast.Store)):
                    names.add(part.attr)
    return names


def methods_of(cls: ast.ClassDef) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [node for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def report_engine_classes(tree: Path, parsed: dict[Path, ast.Module]) -> None:
    engine_dir = tree / "dispatcher" / "engine"
    engine_file = engine_dir / "engine.py"
    print("## class Engine (dispatcher/engine/engine.py)")
    engine = next((node for node in parsed.get(engine_file, ast.Module(body=[])).body
                   if isinstance(node, ast.ClassDef) and node.name == "Engine"), None)
    if engine is None:
        print("not found\n")
    else:
        methods = methods_of(engine)
        attributes = sorted(self_attributes(engine))
        print(f"{len(methods)} methods, {len(attributes)} attributes, "
              f"{engine.end_lineno - engine.lineno + 1} lines")
        print("methods (lines):")
        for method in methods:
            print(f"  {method.name} ({method.end_lineno - method.lineno + 1})")
        print("attributes (self.X assigned anywhere in the class):")
        print("  " + ", ".join(attributes))
        print()
    print("## Every class in dispatcher/engine/*.py")
    print(f"{'file:class':60} {'methods':>7} {'attrs':>5} {'lines':>5}")
    for path in sorted(p for p in parsed if p.parent == engine_dir):
        for node in parsed[path].body:
            if isinstance(node, ast.ClassDef):
                where = f"{path.relative_to(tree)}:{node.name}"
                print(f"{where:60} {len(methods_of(node)):7} {len(self_attributes(node)):5} "
                      f"{node.end_lineno - node.lineno + 1:5}")
    print()


def report_upward_imports(tree: Path, parsed: dict[Path, ast.Module]) -> None:
    print("## Imports in dispatcher/ that point up to workers or cli")
    hits = []
    for path, module in parsed.items():
        if path.relative_to(tree).parts[0] != "dispatcher":
            continue
        for node in ast.walk(module):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("workers", "cli"):
                    hits.append(f"{path.relative_to(tree)}:{node.lineno}  {name}")
    print("\n".join(hits) if hits else "none")
    print()


def mentions_redis_url(node: ast.AST) -> bool:
    return any(
        (isinstance(part, ast.Attribute) and part.attr == "redis_url")
        or (isinstance(part, ast.Name) and part.id == "redis_url")
        or (isinstance(part, ast.Constant) and part.value == "redis_url")
        for part in ast.walk(node)
    )


def redis_url_places(module: ast.Module) -> dict[int, str]:
    """line -> kind: 'check' where a test (if/while/ternary/assert/bool op/comparison) looks
    at redis_url, 'read' for any other load of .redis_url or ["redis_url"]."""
    places: dict[int, str] = {}
    for node in ast.walk(module):
        test = None
        if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            test = node.test
        elif isinstance(node, (ast.BoolOp, ast.Compare)) or (
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            test = node
        if test is not None and mentions_redis_url(test):
            places[test.lineno] = "check"
    for node in ast.walk(module):
        is_read = (isinstance(node, ast.Attribute) and node.attr == "redis_url"
                   and isinstance(node.ctx, ast.Load))
        is_key = (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                  and node.slice.value == "redis_url")
        if (is_read or is_key) and node.lineno not in places:
            places[node.lineno] = "read"
    return places


def report_redis_url(tree: Path, parsed: dict[Path, ast.Module]) -> None:
    print("## Places outside dispatcher/config/ that read redis_url or test for it")
    config_dir = tree / "dispatcher" / "config"
    count = 0
    for path, module in parsed.items():
        if config_dir in path.parents:
            continue
        lines = path.read_text().splitlines()
        for line, kind in sorted(redis_url_places(module).items()):
            print(f"{kind:5}  {path.relative_to(tree)}:{line}  {lines[line - 1].strip()}")
            count += 1
    print(f"{count} places")
    print()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: metrics.py TREE")
    tree = Path(sys.argv[1]).resolve()
    files = source_files(tree)
    parsed = {path: ast.parse(path.read_text(), str(path)) for path in files}
    print(f"# Structure of {tree}\n")
    report_packages(tree, files)
    report_longest_functions(tree, parsed)
    report_engine_classes(tree, parsed)
    report_upward_imports(tree, parsed)
    report_redis_url(tree, parsed)


if __name__ == "__main__":
    main()
