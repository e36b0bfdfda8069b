"""Load untrusted YAML with limits: size, node count (alias bombs), and line numbers kept.

``yaml.compose`` shares one node between all aliases of an anchor, so composing a
"billion laughs" document is cheap; the walk below counts every node it visits, aliases
included, and stops at the limit before anything big is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from builder.errors import SpecError

MAX_BYTES = 1 << 20
MAX_NODES = 20_000

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Located:
    """A plain value (str, int, float, bool, None, list, dict) and the line it starts on."""

    value: Any
    line: int


class _Walker:
    def __init__(self, source: str, max_nodes: int) -> None:
        self.source, self.max_nodes, self.count = source, max_nodes, 0
        self.loader = yaml.SafeLoader("")

    def walk(self, node: yaml.Node) -> Located:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > self.max_nodes:
            raise SpecError(f"more than {self.max_nodes} YAML nodes (alias expansion?)",
                            source=self.source, line=line)
        if isinstance(node, yaml.ScalarNode):
            try:
                return Located(self.loader.construct_object(node, deep=True), line)
            except yaml.YAMLError as exc:
                raise SpecError(f"bad value: {exc}", source=self.source, line=line) from exc
        if isinstance(node, yaml.SequenceNode):
            return Located([self.walk(n) for n in node.value], line)
        items: dict[Any, Located] = {}
        for key_node, value_node in node.value:
            key = self.walk(key_node).value
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise SpecError("a mapping key must be a plain value", source=self.source,
                                line=key_node.start_mark.line + 1)
            if key in items:
                raise SpecError(f"duplicate key {key!r}", source=self.source,
                                line=key_node.start_mark.line + 1)
            items[key] = self.walk(value_node)
        return Located(items, line)


def load_yaml(text: str | bytes, *, source: str = "", max_bytes: int = MAX_BYTES,
              max_nodes: int = MAX_NODES) -> Located:
    """Parse one YAML document into ``Located`` values, refusing oversized input."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise SpecError(f"file is {size} bytes; the limit is {max_bytes}", source=source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                            source=source) from exc
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SpecError(f"invalid YAML: {exc.problem or exc}", source=source, line=line) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", source=source) from exc
    if root is None:
        raise SpecError("the file is empty", source=source)
    return _Walker(source, max_nodes).walk(root)


def plain(located: Located) -> Any:
    """Strip the line numbers: ``Located`` back to plain Python values."""
    value = located.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
