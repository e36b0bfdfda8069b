"""Fuzzing, bounded in time: the URL check, the spec reader and the lock reader.

Properties, not examples: whatever the input, the URL check either refuses or returns a
URL that stays under its base (by rattler's own reading too), and the parsers either
accept or raise their own error: never another exception, never a crash.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envyard.builder.errors import LockError, SpecError, UnsafeURL
from envyard.builder.lock import parse_lock
from envyard.builder.spec import ChannelPolicy, parse_spec
from envyard.builder.urls import contained, parse_url

FUZZ = settings(max_examples=int(os.environ.get("ENVYARD_FUZZ_EXAMPLES", "400")),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])

# pieces attackers use: dot segments in every spelling, separators, encodings, controls
_PIECES = ["..", ".", "%2e", "%2E", "%2e%2e", "%252e", "%2f", "%2F", "%5c", "\\", "/", "//",
           "%00", "\x00", "%", "a", "b.conda", "linux-64", "~", "@", ":", "?", "#", ";",
           "%C0%AE", "\u2025", "\uff0e", " "]
tails = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12).map("".join)
BASE = "file:///srv/chan"


@FUZZ
@given(tails)
def test_a_contained_url_stays_under_its_base(tail: str) -> None:
    base = parse_url(BASE)
    try:
        parts = contained(f"{BASE}/{tail}", [base])
    except UnsafeURL:
        return
    assert all(s not in ("", ".", "..") and "/" not in s for s in parts.segments)
    assert os.path.normpath(parts.path).startswith("/srv/chan/")
    assert str(parse_url(str(parts))) == str(parts)  # canonical form is a fixed point


@FUZZ
@given(tails)
def test_an_allowed_channel_is_where_rattler_goes(tail: str) -> None:
    import rattler

    channel = f"{BASE}/{tail}"
    if not ChannelPolicy.of([BASE + "/*"]).check(channel):
        return
    try:
        used = str(rattler.Channel(channel).base_url)
    except Exception:
        return  # rattler refuses it too
    assert used.startswith(BASE + "/"), (channel, used)


_YAML = ["[", "]", "{", "}", ", ", ": ", "- ", "\n", "  ", "&a ", "*a", "!!str ",
         "!!python/name:x ", "? ", "'q'", '"\\x00"', "#c", "dependencies", "python=3.11",
         "pip", "channels", "version", "1", "package", "null", "~", "---\n", "...\n",
         "|\n  x", "%YAML 1.1\n", "!!bool maybe", "!!timestamp 1", "2020-13-45",
         "!!int ''", "9" * 5000, "!!binary '@@'", "2020-01-01 10:00:00+99:99"]
yamlish = st.lists(st.sampled_from(_YAML), max_size=60).map("".join)


@FUZZ
@given(yamlish)
def test_the_spec_reader_only_ever_raises_spec_errors(text: str) -> None:
    with contextlib.suppress(SpecError):
        parse_spec(text)


@FUZZ
@given(yamlish)
def test_the_lock_reader_only_ever_raises_lock_errors(text: str) -> None:
    with contextlib.suppress(LockError):
        parse_lock("version: 1\n" + text)
    with contextlib.suppress(LockError):
        parse_lock(text)


@pytest.mark.parametrize("depth", [40, 500, 100_000])
def test_deep_nesting_is_a_clear_error_not_a_crash(depth: int) -> None:
    """100,000 '[' (200 KB) overflowed PyYAML's recursive composer and killed the process."""
    with pytest.raises(SpecError, match="nested more than"):
        parse_spec("dependencies: " + "[" * depth + "]" * depth + "\n", max_bytes=1 << 21)


@pytest.mark.parametrize("value", ["!!bool maybe", "!!timestamp 1", "!!int ''", "2020-13-45",
                                   "9" * 5000, "2020-01-01 10:00:00+99:99", "!!float x",
                                   "!!binary 'a'"])
def test_unreadable_scalars_are_the_parsers_errors(value: str) -> None:
    """Found by review: PyYAML's scalar constructors raise KeyError, AttributeError or
    ValueError on such values, which reached the API as a 500."""
    with pytest.raises(LockError, match="bad value"):
        parse_lock(f"version: 1\nmetadata: {value}\n")
    with pytest.raises(SpecError, match="bad value"):
        parse_spec(f"name: {value}\ndependencies: [python]\n")


def test_a_second_yaml_document_is_refused() -> None:
    with pytest.raises(LockError, match="more than one YAML document"):
        parse_lock("version: 1\n---\nversion: 2\n")


@pytest.mark.parametrize("text,words", [("version: 1\nversion: 1\n", "duplicate key"),
                                        ("version: 1\nx: {<<: {a: 1}}\n", "merge keys")])
def test_duplicate_and_merge_keys_are_refused_as_by_the_spec_reader(text: str,
                                                                    words: str) -> None:
    """Found by review: the lock reader silently took the last of duplicate keys."""
    with pytest.raises(LockError, match=words):
        parse_lock(text)
