"""Text students control (file names, messages, metadata) made safe for a terminal and a spreadsheet."""
from __future__ import annotations

import re

# C0 and C1 control characters (ESC starts the sequences that move the cursor or rewrite a line),
# DEL, and the Unicode bidirectional overrides that reorder what is shown; newlines and tabs stay.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Characters a spreadsheet reads as the start of a formula (OWASP's CSV-injection guidance).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """`text` with every control character shown as �: nothing printed can move the cursor or forge a line."""
    return _UNSAFE.sub("\ufffd", str(text))


def csv_text(value: str) -> str:
    """A text cell a spreadsheet shows as text: a leading =, +, -, @, tab or CR gets a ' before it."""
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
