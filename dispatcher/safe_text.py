"""User-provided text made safe to show on a terminal.

Batch names, metadata, custom_ids and error messages come from whoever submitted a batch and
are shown to everyone who runs ``list`` or ``status``. Control characters in them (ESC
sequences, carriage returns, bidi overrides) could repaint or hide what a terminal shows, so
they are shown as visible escapes instead. Rich markup is a separate concern: see
``dispatcher.console.literal``.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode bidi controls that reorder what follows them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

MAX_SHOWN = 2000  # characters of one value; the rest is elided (the data itself is untouched)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with control characters shown as ``\\x1b``-style escapes.

    ``keep_newlines`` keeps line breaks (messages); table cells and one-line fields do not.
    """
    text = "" if value is None else str(value)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + f"... ({len(text) - MAX_SHOWN} more characters)"
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)
