"""JSON text the way Go's ``encoding/json`` writes it.

The seed printed its payload schema, and gojsonschema quoted enum values, with Go's encoder, which
escapes ``<``, ``>`` and ``&`` (and U+2028/U+2029) inside strings and leaves other non-ASCII
characters as they are. Operators and tests compare that text, so we reproduce it.
"""

from __future__ import annotations

import json

# Outside string literals JSON text never contains these characters, so replacing them in the
# encoded text only ever touches string contents.
_GO_ESCAPES = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


def go_json_dumps(value: object, *, indent: int | None = None) -> str:
    """Encode ``value`` as Go's ``json.Marshal`` (or ``MarshalIndent`` when ``indent`` is set) does.

    Object keys are sorted, as Go sorts map keys; compact output has no spaces after separators.
    """
    if indent is None:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent)
    return text.translate(_GO_ESCAPES)
