"""ANSI colour codes (SGR) in log lines turned into escaped HTML with `<span class="...">`.

Only SGR sequences (`ESC [ ... m`) become styles: the 8 + 8 bright foreground and background
colours, bold, faint, italic and underline (256-colour and RGB codes are consumed and rendered
as the default colour). Any other escape sequence (cursor moves, erase) is dropped. The text
itself is always HTML-escaped, so a log line can never inject markup. Styles carry over from one
line to the next, as on a terminal.
"""

from __future__ import annotations

import html
import re

ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b[()][A-Za-z0-9]|\x1b[=>]")
FLAGS = {1: "b", 2: "f", 3: "i", 4: "u"}
CLEAR_FLAGS = {22: ("b", "f"), 23: ("i",), 24: ("u",)}


class AnsiRenderer:
    """Renders successive lines of one log, keeping the SGR state between them."""

    def __init__(self) -> None:
        self.fg: str | None = None
        self.bg: str | None = None
        self.flags: set[str] = set()

    def _classes(self) -> str:
        names = [f"ansi-{flag}" for flag in sorted(self.flags)]
        if self.fg:
            names.append(f"ansi-fg{self.fg}")
        if self.bg:
            names.append(f"ansi-bg{self.bg}")
        return " ".join(names)

    def _apply(self, params: str) -> None:
        codes = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.fg = self.bg = None
                self.flags.clear()
            elif code in FLAGS:
                self.flags.add(FLAGS[code])
            elif code in CLEAR_FLAGS:
                self.flags.difference_update(CLEAR_FLAGS[code])
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = str(code - 30 if code < 90 else code - 90 + 8)
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = str(code - 40 if code < 100 else code - 100 + 8)
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48):  # extended colour: skip its arguments
                if i + 1 < len(codes):
                    i += 4 if codes[i + 1] == 2 else 2
            i += 1

    def line(self, text: str) -> str:
        """One line (without its newline) as HTML."""
        out: list[str] = []
        classes = self._classes()
        if classes:
            out.append(f'<span class="{classes}">')
        position = 0
        for match in ESCAPE.finditer(text):
            out.append(html.escape(text[position : match.start()]))
            position = match.end()
            if match.group(2) != "m":
                continue
            if classes:
                out.append("</span>")
            self._apply(match.group(1))
            classes = self._classes()
            if classes:
                out.append(f'<span class="{classes}">')
        out.append(html.escape(text[position:]))
        if classes:
            out.append("</span>")
        return "".join(out)
