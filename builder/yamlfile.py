"""Load untrusted YAML with limits: size, node count (alias bombs), and line numbers kept.

``yaml.compose`` shares one node between all aliases of an anchor, so composing a
"billion laughs" document is cheap; the walk below counts every node it visits, aliases
included, and stops at the limit before anything big is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import yaml

from envyard.builder.errors import SpecError

MAX_BYTES = 1 << 20
MAX_NODES = 20_000
MAX_DEPTH = 32  # an environment file is 3 levels deep; the walk below recurses per level

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Located:
    """A plain value (str, int, float, bool, None, list, dict) and the line it starts on."""

    value: Any
    line: int


def _line(event: yaml.Event) -> int | None:
    """The 1-based line ``event`` starts on (the stubs allow an event without a mark; the
    parser always sets one)."""
    return event.start_mark.line + 1 if event.start_mark is not None else None


class _Walker:
    def __init__(self, source: str, max_nodes: int) -> None:
        self.source, self.max_nodes, self.count = source, max_nodes, 0
        self.loader = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, depth: int = 0) -> Located:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > self.max_nodes:
            raise SpecError(f"more than {self.max_nodes} YAML nodes (alias expansion?)",
                            source=self.source, line=line)
        if depth > MAX_DEPTH:
            raise SpecError(f"nested more than {MAX_DEPTH} levels deep", source=self.source,
                            line=line)
        if isinstance(node, yaml.ScalarNode):
            try:
                return Located(self.loader.construct_object(node, deep=True), line)
            except _BAD_VALUE as exc:
                raise SpecError(f"bad value {str(node.value)[:40]!r}: {type(exc).__name__}",
                                source=self.source, line=line) from None
        if isinstance(node, yaml.SequenceNode):
            return Located([self.walk(n, depth + 1) for n in node.value], line)
        items: dict[Any, Located] = {}
        for key_node, value_node in node.value:
            key = self.walk(key_node, depth + 1).value
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise SpecError("a mapping key must be a plain value", source=self.source,
                                line=key_node.start_mark.line + 1)
            if key in items:
                raise SpecError(f"duplicate key {key!r}", source=self.source,
                                line=key_node.start_mark.line + 1)
            items[key] = self.walk(value_node, depth + 1)
        return Located(items, line)


def scan(text: str | bytes, *, source: str = "", max_nodes: int = MAX_NODES,
         max_depth: int = MAX_DEPTH, aliases: bool = True) -> None:
    """Walk the YAML events of ``text`` (streamed: nothing is built) and stop past
    ``max_depth`` levels, past ``max_nodes`` nodes, or, unless ``aliases``, at the first
    anchor or alias. Run before composing: PyYAML's composer recurses once per level in C,
    and a few hundred kilobytes of ``[`` overflow the stack and kill the process."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if not aliases and (isinstance(event, yaml.AliasEvent)
                            or getattr(event, "anchor", None) is not None):
            raise SpecError("YAML anchors and aliases are not allowed here", source=source,
                            line=_line(event))
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise SpecError(f"nested more than {max_depth} levels deep", source=source,
                                line=_line(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > max_nodes:
                raise SpecError(f"more than {max_nodes} YAML nodes", source=source,
                                line=_line(event))


_STR = "tag:yaml.org,2002:str"
_NO_KEY = object()


def _scalar(event: yaml.ScalarEvent, resolver: yaml.resolver.BaseResolver,
            constructor: yaml.constructor.SafeConstructor) -> Any:
    """A scalar's value, typed as PyYAML's safe loader types it (int, float, bool, null,
    timestamp); an unknown tag is an error, as there."""
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return event.value  # quoted: a string
        tag = resolver.resolve(  # type: ignore[no-untyped-call]  # unannotated in the stubs
            yaml.ScalarNode, event.value, (True, False))
    if tag == _STR:
        return event.value
    if tag.endswith(":merge"):
        raise SpecError("YAML merge keys (<<) are not allowed here",
                        line=_line(event))
    make = constructor.yaml_constructors.get(tag)
    if make is None or tag.endswith((":seq", ":map", ":omap", ":pairs", ":set")):
        raise SpecError(f"unknown tag {tag}", line=_line(event))
    # libyaml's events carry yaml._yaml.Mark, which the stubs' Node does not take (PyYAML
    # takes any mark)
    node = yaml.ScalarNode(tag, event.value, event.start_mark)  # type: ignore[arg-type]
    return _constructed(make, constructor, node)


#: What PyYAML's scalar constructors raise on values they cannot read (``!!bool maybe``:
#: KeyError, ``!!timestamp 1``: AttributeError, ``2020-13-45``: ValueError, a 5,000-digit
#: integer: ValueError) besides its own errors.
_BAD_VALUE = (yaml.YAMLError, ValueError, KeyError, IndexError, AttributeError, TypeError,
              OverflowError)


def _constructed(make: Any, constructor: Any, node: yaml.Node) -> Any:
    try:
        return make(constructor, node)
    except _BAD_VALUE as exc:
        raise SpecError(f"bad value {node.value[:40]!r}: {type(exc).__name__}",
                        line=node.start_mark.line + 1) from None


def load_plain(text: str | bytes, *, max_nodes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Plain Python values (what ``yaml.safe_load`` gives) built straight from the event
    stream in one pass, with the budgets of ``scan``, and no anchors or aliases. Twice as
    fast as ``yaml.load`` (no node graph), and it never recurses, so depth is only a limit."""
    resolver, constructor = yaml.resolver.Resolver(), yaml.constructor.SafeConstructor()
    stack: list[list[Any]] = []  # [container, pending key] per open collection
    root: Any = None
    nodes = 0

    def add(value: Any) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        if type(top[0]) is list:
            top[0].append(value)
        elif top[1] is _NO_KEY:
            if isinstance(value, list | dict):
                raise SpecError("a mapping key must be a plain value",
                                line=_line(event))
            if value in top[0]:  # as load_yaml: the second one is not silently taken
                raise SpecError(f"duplicate key {value!r}", line=_line(event))
            top[1] = value
        else:
            top[0][top[1]] = value
            top[1] = _NO_KEY

    documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        kind = type(event)
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise SpecError("more than one YAML document", line=_line(event))
            continue
        if kind is yaml.AliasEvent or getattr(event, "anchor", None) is not None:
            raise SpecError("YAML anchors and aliases are not allowed here",
                            line=_line(event))
        if kind is yaml.ScalarEvent:
            add(_scalar(cast(yaml.ScalarEvent, event), resolver, constructor))
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            container: Any = {} if kind is yaml.MappingStartEvent else []
            add(container)
            stack.append([container, _NO_KEY])
            if len(stack) > max_depth:
                raise SpecError(f"nested more than {max_depth} levels deep",
                                line=_line(event))
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            stack.pop()
            continue
        else:
            continue
        nodes += 1
        if nodes > max_nodes:
            raise SpecError(f"more than {max_nodes} YAML nodes",
                            line=_line(event))
    return root


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
        scan(text, source=source, max_nodes=max_nodes)
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
