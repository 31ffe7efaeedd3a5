"""The shapes of model-output samples: which text is audited, and which is context the model was given.

A sample's *audited text* (the completion, or the assistant turns of a chat) is a target
record for the ordinary engine; its prompt (or the other turns) is context, never evidence
(``regurgitation.spans`` discounts it). ``detect_kind`` tells a generation dump from
training data by its first records. docs/outputs.md has the rules.

Example:
    >>> sample_text({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    ('assistant', 'hello', 'hi')
"""

from __future__ import annotations

import functools
import json
from typing import Any

from provaudit.read.records import Extract
from provaudit.read.sources import expand_sources, read_source

__all__ = ["DEFAULT_TEXT_FIELD", "detect_kind", "extract_sample", "sample_extractor", "sample_text"]

DEFAULT_TEXT_FIELD = "text"
ASSISTANT_ROLES = ("assistant", "model")
GIVEN_FIELDS = ("prompt", "system", "instruction", "input")  # context the model was given: never evidence
PEEK_RECORDS = 20


def _content(value: Any, where: str) -> str | None:
    """A message's text: a string, None, or a list of parts ({"type": "text", "text": ...} or strings)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in value if isinstance(p, (str, dict))]
        return "\n".join(p for p in parts if isinstance(p, str))
    raise ValueError(f"{where} content is {type(value).__name__}, not a string or a list of text parts")


def _chat(messages: Any, name: str) -> tuple[str | None, str]:
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise ValueError(f"field {name!r} is a string but not a JSON list of messages") from None
    if not isinstance(messages, list):
        raise ValueError(f"field {name!r} is {type(messages).__name__}, not a list of messages")
    said: list[str] = []
    given: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"{name}[{i}] is {type(m).__name__}, not an object with role and content")
        text = _content(m.get("content"), f"{name}[{i}]")
        if text is not None:
            (said if m.get("role") in ASSISTANT_ROLES else given).append(text)
    return ("\n".join(said) if said else None), "\n".join(given)


def sample_text(obj: dict[str, Any], text_field: str = DEFAULT_TEXT_FIELD) -> tuple[str, str | None, str]:
    """Split one output record into (audited field, audited text, given context).

    Shapes, in order: an explicit ``text_field`` (other than ``"text"``) wins; else
    ``messages`` (chat: the assistant turns, joined by newlines, are audited; every
    other turn is context); else ``completion`` (its ``prompt`` is context); else the
    text field. Context also includes any of ``prompt``, ``system``, ``instruction``,
    ``input`` fields that are not audited.

    Raises:
        ValueError: on a malformed shape (the reader reports file and line).

    Example:
        >>> sample_text({"prompt": "Say hi", "completion": "hi there"})
        ('completion', 'hi there', 'Say hi')
    """
    explicit = text_field != DEFAULT_TEXT_FIELD
    if not explicit and "messages" in obj:
        name = "messages"
    elif not explicit and "completion" in obj:
        name = "completion"
    elif text_field in obj:
        name = text_field
    else:
        fields = ", ".join(sorted(map(str, obj))[:8])
        wanted = repr(text_field) if explicit else f"{text_field!r}, 'completion' or 'messages'"
        raise ValueError(f"no field {wanted} (fields: {fields}; use --text-field)")
    value = obj[name]
    context = [obj[k] for k in GIVEN_FIELDS if k != name and isinstance(obj.get(k), str)]
    if isinstance(value, list) or name == "messages":
        text, given = _chat(value, name)
        return "assistant", text, "\n".join(c for c in (*context, given) if c)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {name!r} is {type(value).__name__}, not a string")
    return name, value, "\n".join(context)


def extract_sample(text_field: str, obj: dict[str, Any]) -> tuple[str | None, tuple[str, str]]:
    """The ``read.sources.read_source`` extract hook of model-output samples: the audited text, and as
    the record's ``meta`` its (audited field, given context); ``.txt`` sources never call it."""
    fld, text, given = sample_text(obj, text_field)
    return text, (fld, given)


def sample_extractor(text_field: str = DEFAULT_TEXT_FIELD) -> Extract:
    """``extract_sample`` for one text field (it pickles: workers read samples themselves)."""
    return functools.partial(extract_sample, text_field)


def detect_kind(specs: list[str], text_field: str = DEFAULT_TEXT_FIELD, input_format: str | None = None) -> str:
    """``"outputs"`` when the first input looks like a generation dump, else ``"training"``.

    Looks at the first records of the first input: ``messages`` lists or
    ``prompt`` + ``completion`` pairs make a generation dump. With an explicit
    ``text_field`` found in the records, the records are outputs only if they also
    have a ``prompt`` or the field holds chat messages. Plain ``{"text"}`` samples
    cannot be told from training data: use ``--kind outputs``.

    Raises:
        InputError: if a spec names nothing readable.
    """
    sources = expand_sources(specs, fmt=input_format)
    if not sources:
        return "training"
    seen: list[dict[str, Any]] = []

    def peek(obj: dict[str, Any]) -> tuple[str, None]:
        seen.append(obj)
        return "x", None

    for n, _ in enumerate(read_source(sources[0], text_field=text_field, id_field=None, on_error="skip",
                                      extract=peek), 1):
        if n >= PEEK_RECORDS:
            break
    for obj in seen:
        if text_field != DEFAULT_TEXT_FIELD and text_field in obj:
            if "prompt" in obj or isinstance(obj[text_field], list):
                return "outputs"
        elif "messages" in obj or ("prompt" in obj and "completion" in obj):
            return "outputs"
    return "training"


