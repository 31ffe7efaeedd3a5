"""Escaping untrusted text (reference and target ids, file names, error messages) for each output.

Ids and paths come from the corpora and are untrusted: an id can hold ANSI escapes, newlines
that fake a verdict line, bidi overrides, characters XML 1.0 cannot carry, or ``::`` and
``%0A`` sequences aimed at GitHub's workflow-command parser. Every renderer of the gate
passes such text through one of these functions.
"""

from __future__ import annotations

_BIDI_AND_SEPARATORS = frozenset("\u2028\u2029\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def terminal_safe(text: object) -> str:
    """Escape control characters (ANSI escapes, bells, newlines), line separators, bidi controls, lone
    surrogates and the noncharacters U+FFFE/U+FFFF.

    Example:
        >>> terminal_safe("evil\\x1b[2J\\nFAKE: PASS")
        'evil\\\\x1b[2J\\\\nFAKE: PASS'
    """
    out = []
    for ch in str(text):
        cp = ord(ch)
        if cp < 32 or 127 <= cp < 160 or ch in _BIDI_AND_SEPARATORS:
            out.append(_escaped(ch))
        elif 0xD800 <= cp <= 0xDFFF or cp in (0xFFFE, 0xFFFF):  # lone surrogates cannot even be encoded
            out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    return "".join(out)


def xml_text(text: object) -> str:
    """Untrusted text made fit for an XML 1.0 document (the serializer then escapes ``<&>"``).

    Characters XML 1.0 cannot carry (NUL and the other C0 controls but tab, LF and CR, lone
    surrogates, U+FFFE/U+FFFF) would make the file unparsable, and a newline in an id would fake a
    line of the failure text: all of them, with the C1 and bidi controls, are written as visible
    escapes, exactly as on the terminal (``terminal_safe`` leaves only XML 1.0 ``Char``s).

    Example:
        >>> xml_text("a\\x00b\\n\\x1b[31m\\ufffe")
        'a\\\\x00b\\\\n\\\\x1b[31m\\\\ufffe'
    """
    return terminal_safe(text)


def workflow_data(text: str) -> str:
    """Escape the message of a GitHub Actions workflow command (``::error ...::MESSAGE``).

    GitHub's rules (``@actions/core`` ``escapeData``): ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``.
    Untrusted parts should go through ``terminal_safe`` first; this then keeps our own line
    breaks and any ``%`` from being read as command syntax.
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: str) -> str:
    """Escape a property value of a workflow command (``file=``, ``title=``).

    GitHub's rules (``escapeProperty``): as ``workflow_data``, plus ``:`` -> ``%3A`` and ``,`` -> ``%2C``.
    """
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")
