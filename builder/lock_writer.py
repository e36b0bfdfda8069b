"""conda-lock.yml's text, written directly: the same bytes as PyYAML's dump, which conda-lock
uses, at a fraction of its cost.

An 800-package lock is ~12,000 YAML nodes; ``yaml.dump`` builds and emits each as an event
(~0.2 s, a fifth of a whole lock). A lock's shape is fixed, so each package is written from
a template, and each distinct string is styled once, by PyYAML's own rules (its resolver
decides whether a plain string would read back as a string, its emitter's analysis whether
it may be plain or single-quoted). A package holding anything the template does not cover
(a string with spaces or non-ASCII, a long key) is written by PyYAML itself, so the output
never depends on the shortcut.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import yaml
import yaml.emitter
import yaml.resolver

#: conda-lock writes with PyYAML's Python emitter; libyaml's differs on edge cases (an
#: empty or 128-character key, a carriage return), so the fallback is the Python one.
_DUMPER = yaml.SafeDumper
_STR = "tag:yaml.org,2002:str"
_resolver = yaml.resolver.Resolver()
#: Its ``resolve`` (node kind, value, implicit flags -> tag), typed: the stubs leave it bare.
_resolve: Callable[[type[yaml.Node], str, tuple[bool, bool]], str] = _resolver.resolve
#: Starts with no YAML indicator and holds no character that needs a look by the emitter.
_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:+=<>,!*~-]*")
_analyzer = yaml.emitter.Emitter(io.StringIO())


class _Unsupported(Exception):
    """A value the template does not write; PyYAML writes its package instead."""


def _scalar(value: str, key: bool = False) -> str:
    """``value`` as PyYAML's block style writes it (plain or single-quoted)."""
    if not value:
        if key:
            raise _Unsupported(value)  # PyYAML writes an empty key as `? ''`
        return "''"
    if " " in value or len(value) > (100 if key else 1000):
        raise _Unsupported(value)  # may be folded, or a long key written as `? key`
    if (_PLAIN.fullmatch(value) and not value.endswith(":") and not value.startswith("...")
            and _resolve(yaml.ScalarNode, value, (True, False)) == _STR):
        return value  # what the emitter's analysis allows plain, without running it
    analysis = _analyzer.analyze_scalar(value)
    if analysis.multiline:
        raise _Unsupported(value)
    if (_resolve(yaml.ScalarNode, value, (True, False)) == _STR
            and analysis.allow_block_plain):
        return value
    if analysis.allow_single_quoted:
        return "'" + value.replace("'", "''") + "'"
    raise _Unsupported(value)


class _Styles(dict[tuple[str, bool], str]):
    """The strings of one lock, styled once each (hashes and URLs repeat per category)."""

    def __missing__(self, item: tuple[str, bool]) -> str:
        self[item] = styled = _scalar(*item)
        return styled


def _value(value: Any, styles: _Styles) -> str:
    if isinstance(value, str):
        return styles[value, False]
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise _Unsupported(value)


def _mapping(entries: dict[str, Any], indent: str, styles: _Styles) -> list[str]:
    lines = []
    for key, value in entries.items():
        if isinstance(value, dict):
            if not value:
                lines.append(f"{indent}{styles[key, True]}: {{}}")
            else:
                lines.append(f"{indent}{styles[key, True]}:")
                lines += _mapping(value, indent + "  ", styles)
        else:
            lines.append(f"{indent}{styles[key, True]}: {_value(value, styles)}")
    return lines


def package_text(package: dict[str, Any], styles: _Styles | None = None) -> str:
    """One entry of ``package:`` (``- name: ...``), as PyYAML writes it."""
    try:
        lines = _mapping(package, "  ", _Styles() if styles is None else styles)
    except _Unsupported:
        return yaml.dump([package], Dumper=_DUMPER, sort_keys=False)
    return "- " + "\n".join(lines)[2:] + "\n"


def lock_text(version: int, metadata: dict[str, Any], packages: list[dict[str, Any]]) -> str:
    """The YAML of a whole lock (below conda-lock's comment header)."""
    if not packages:
        return yaml.dump({"version": version, "metadata": metadata, "package": []},
                         Dumper=_DUMPER, sort_keys=False)
    head = yaml.dump({"version": version, "metadata": metadata}, Dumper=_DUMPER,
                     sort_keys=False)
    styles = _Styles()
    return head + "package:\n" + "".join(package_text(p, styles) for p in packages)
