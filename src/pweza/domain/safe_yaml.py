"""Reading YAML that may be hostile: bounded nesting and alias expansion, text only.

`yaml.safe_load` already refuses arbitrary objects, but not these:
- an alias bomb ("billion laughs"): a few lines whose aliases expand to billions of nodes.
  PyYAML shares the aliased objects, so loading is quick; whatever then walks the value
  (validation, JSON encoding) runs for hours.
- deep nesting: PyYAML composes recursively, so 20,000 nested `[` end in RecursionError.
- bytes that are not UTF-8 text.
Every one is refused here with an InvalidInput that names the source, what was wrong and
the limit, before anything else sees the value.
"""

from __future__ import annotations

from typing import Any

import yaml

from pweza.domain.errors import InvalidInput

MAX_DEPTH = 100
# Nodes that aliases may add beyond those written out: generous for anchors that share a
# block of settings, far below anything that takes noticeable time to walk.
MAX_ALIAS_NODES = 10_000


class _Refused(Exception):
    """Raised inside the loader; turned into InvalidInput with the source's name."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing beyond MAX_DEPTH levels (before Python's own limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(
                    f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1}); the limit is {MAX_DEPTH}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_all(data: bytes | str, source: str) -> list[Any]:
    """Every document in `data` (None for empty ones); `source` names it in errors."""
    text = _as_text(data, source)
    documents: list[Any] = []
    try:
        loader = _BoundedLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    _check_expansion(node)
                    documents.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except _Refused as refused:
        raise InvalidInput(f"{source}: refused: {refused}") from None
    except yaml.YAMLError as error:
        raise InvalidInput(f"{source}: not valid YAML: {error}") from None
    return documents


def load_one(data: bytes | str, source: str) -> Any:
    """The single document in `data` (None when empty)."""
    documents = load_all(data, source)
    if len(documents) > 1:
        raise InvalidInput(f"{source}: expected one YAML document, found {len(documents)}")
    return documents[0] if documents else None


def _as_text(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{source}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x})") from None


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand too far, or refer to a node that contains them.

    An alias is the same node object reached twice, so the expanded size is counted over the
    graph with each node's size remembered: linear in what was written, whatever it expands to.
    Iterative, so a deep expansion cannot hit Python's recursion limit either.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            counted = [sizes[id(child)] for child in children]
            size = 1 + sum(count for count, _ in counted)
            depth = 1 + max((level for _, level in counted), default=0)
            sizes[key] = (size, depth)
            if size - len(sizes) > MAX_ALIAS_NODES:
                raise _Refused(f"aliases expand to more than {MAX_ALIAS_NODES} nodes; the limit is {MAX_ALIAS_NODES}")
            if depth > MAX_DEPTH:
                raise _Refused(f"aliases nest more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused(f"an alias refers to a node that contains it (line {node.start_mark.line + 1})")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
