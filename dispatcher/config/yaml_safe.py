"""Read a config file's YAML with a bound on what aliases can expand to.

YAML aliases (``*name``) repeat the node their anchor (``&name``) points at. A few lines of
nested aliases ("billion laughs") describe gigabytes once anything walks the result: setting
``environment_variables`` stringifies it, a chat default is serialised into every request.
PyYAML shares the repeated objects, so loading is cheap; the cost comes later, far from the
file. We therefore measure the document as if every alias were written out, on the composed
node graph (linear time: each node's size is computed once), and refuse it past a bound
no hand-written config comes near. Recursive aliases (``&a [*a]``) are refused too.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

from dispatcher.errors import ConfigError

# A large real config (hundreds of deployments) is tens of thousands of nodes and well under
# a megabyte of text; the bounds leave a wide margin and stop expansion long before memory.
MAX_EXPANDED_NODES = 200_000
MAX_EXPANDED_CHARS = 10_000_000


def load_bounded_yaml(stream: str | IO[str], source: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand past the bounds."""
    loader = yaml.SafeLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _ExpandedSize(source).measure(node)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply to be a config file") from None
    finally:
        loader.dispose()


class _ExpandedSize:
    """Nodes and scalar characters of a node graph with every alias written out."""

    def __init__(self, source: str):
        self._source = source
        self._sizes: dict[int, tuple[int, int]] = {}
        self._open: set[int] = set()  # nodes whose size is being computed (cycle detection)

    def measure(self, node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            return known
        if key in self._open:
            raise ConfigError(
                f"{self._source}: the value anchored at {_where(node)} contains an alias to "
                "itself (a recursive YAML alias); write the value out instead"
            )
        self._open.add(key)
        if isinstance(node, yaml.ScalarNode):
            nodes, chars = 1, len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [
                part for pair in node.value for part in pair
            ]
            nodes, chars = 1, 0
            for child in children:
                child_nodes, child_chars = self.measure(child)
                nodes += child_nodes
                chars += child_chars
        self._open.discard(key)
        if nodes > MAX_EXPANDED_NODES or chars > MAX_EXPANDED_CHARS:
            raise ConfigError(
                f"{self._source}: the value at {_where(node)} expands to more than "
                f"{MAX_EXPANDED_NODES:,} values or {MAX_EXPANDED_CHARS:,} characters once its YAML "
                "aliases (*name) are written out; a config this large is almost certainly an "
                "alias bomb. Write the values out, or use fewer nested aliases"
            )
        self._sizes[key] = (nodes, chars)
        return nodes, chars


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"
