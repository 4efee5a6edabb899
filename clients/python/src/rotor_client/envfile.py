r"""Reading the dotenv files `rotor render` writes (``[[render]] kind = "dotenv"``).

rotor's dialect (crates/rotor-deliver/src/format.rs): a ``#`` comment line, then one
``NAME="value"`` per variable; inside the quotes ``\\``, ``\"``, ``\$`` and ``\``` are
escaped and a newline is a literal newline. Unquoted ``NAME=value`` lines (hand-written
files) are read too, up to the end of the line.
"""

from __future__ import annotations

import os
import re

from .errors import KeyFormError
from .secret import Secret

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_dotenv(text: str, *, source: str = "<text>") -> dict[str, Secret]:
    """Every variable of a dotenv text. Errors name the file and line, never a value."""
    out: dict[str, Secret] = {}
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            i, line = i + 1, line + 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        m = _NAME.match(text, i)
        if m is None or m.end() >= n or text[m.end()] != "=":
            raise KeyFormError(
                f"{source}:{line}: expected NAME=\"value\" (a variable name, '=', a value); "
                "is this a file `rotor render` wrote?"
            )
        name, i = m.group(0), m.end() + 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            start_line = line
            while True:
                if i >= n:
                    raise KeyFormError(
                        f"{source}:{start_line}: the value of {name} has no closing quote"
                    )
                c = text[i]
                if c == "\\" and i + 1 < n and text[i + 1] in '\\"$`':
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                chars.append(c)
                i += 1
            value = "".join(chars)
        else:
            j = text.find("\n", i)
            j = n if j < 0 else j
            value = text[i:j].rstrip("\r").strip()
            i = j
        out[name] = Secret(value)
    return out


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, Secret]:
    """The variables of the dotenv file at `path`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KeyFormError(
            f"cannot read the env file {os.fspath(path)!r} ({e.strerror}); "
            "is `[[render]] path` right and has `rotor render` run?"
        ) from None
    return parse_dotenv(text, source=os.fspath(path))
