"""Reading a JSON object whose one large list is taken an element at a time (a check JSON's ``pairs``).

``json.load`` builds the whole document: for a check JSON of 400,000 pairs, a dict per pair.
``read_object`` decodes the top-level members one at a time with ``json.JSONDecoder.raw_decode``
over a buffer that is refilled from the file, hands each element of the ``streamed`` member to
a callback and keeps only the other members.

Example:
    >>> import io
    >>> seen = []
    >>> read_object(io.StringIO('{"a": 1, "pairs": [{"x": 1}, {"x": 2}], "z": null}'), "pairs",
    ...             lambda i, v: seen.append((i, v)))
    ({'a': 1, 'z': None}, True)
    >>> seen
    [(0, {'x': 1}), (1, {'x': 2})]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TextIO

_SPACE = re.compile(r"[ \t\n\r]*")
CHUNK = 1 << 16


class _Buffer:
    """Characters of a text stream, refilled as a value needs more; ``done`` counts those dropped."""

    def __init__(self, f: TextIO) -> None:
        self.f, self.text, self.pos, self.done, self.eof = f, "", 0, 0, False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        chunk = self.f.read(max(CHUNK, len(self.text) - self.pos))  # doubling: a long value is decoded O(n) times
        if not chunk:
            self.eof = True
            return False
        self.done += self.pos
        self.text, self.pos = self.text[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), not consumed."""
        while True:
            m = _SPACE.match(self.text, self.pos)
            self.pos = m.end() if m else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise ValueError(f"expected {' or '.join(repr(x) for x in chars)} at character {self.done + self.pos}")
        self.pos += 1
        return c

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                v, end = self.decoder.raw_decode(self.text, self.pos)
                if end < len(self.text) or self.eof or not self._more():  # a number may go on in the next chunk
                    self.pos = end
                    return v
            except json.JSONDecodeError as e:
                if self.eof or not self._more():
                    raise ValueError(f"{e.msg} at character {self.done + e.pos}") from None


def read_object(f: TextIO, streamed: str, each: Callable[[int, Any], None]) -> tuple[dict[str, Any], bool]:
    """The top-level object of ``f`` without its member ``streamed``, whose list elements go to
    ``each(index, element)`` as they are decoded; and whether that member was a list.

    Raises:
        ValueError: not JSON, or the top level is not an object (the message says where).
    """
    buf = _Buffer(f)
    if buf.peek() != "{":
        raise ValueError("top level is not an object")
    buf.pos += 1
    doc: dict[str, Any] = {}
    found = False
    if buf.peek() == "}":
        buf.pos += 1
    else:
        while True:
            buf.peek()
            start = buf.done + buf.pos
            key = buf.value()
            if not isinstance(key, str):
                raise ValueError(f"expected a member name at character {start}")
            buf.expect(":")
            if key == streamed and buf.peek() == "[":
                found = True
                _elements(buf, each)
            else:
                doc[key] = buf.value()
            if buf.expect(",}") == "}":
                break
    if buf.peek():
        raise ValueError(f"extra data at character {buf.done + buf.pos}")
    return doc, found


def _elements(buf: _Buffer, each: Callable[[int, Any], None]) -> None:
    buf.pos += 1  # the "["
    if buf.peek() == "]":
        buf.pos += 1
        return
    i = 0
    while True:
        each(i, buf.value())
        i += 1
        if buf.expect(",]") == "]":
            return
