"""The YAML float trap, caught: a number that YAML 1.1 read as a string.

YAML 1.1 (PyYAML) reads a number without a ``.`` in its mantissa, such as ``1e-4``, as the string
``'1e-4'``; ``1.0e-4`` is a float. Grid files (:mod:`bnnlib.experiment.sweep`) and any other
YAML config check their values with :func:`find_number_strings`, so the mistake fails with a
message that names the key instead of a string reaching an optimizer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

NUMBER_STRING = re.compile(r"^[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def number_string_error(where: str, text: str) -> TypeError:
    """The error for the number string ``text`` found at ``where``, with the spelling to use."""
    written = yaml.safe_dump(float(text)).splitlines()[0]
    return TypeError(
        f"{where}: got the string {text!r} where a number belongs; YAML reads a number without a "
        f"'.' in its mantissa (like 1e-4) as a string: write it as {written}"
    )


def is_number_string(value: Any) -> bool:
    """Whether ``value`` is a string that spells a number (``'1e-4'``, ``' 3 '``)."""
    return isinstance(value, str) and bool(NUMBER_STRING.match(value.strip()))


def find_number_strings(value: Any, where: str) -> None:
    """Raise TypeError at the first string anywhere in ``value`` that is a number YAML did not
    read as one (``1e-4``): in configs and grids no string field looks like that."""
    if is_number_string(value):
        raise number_string_error(where, value)
    if isinstance(value, dict):
        for key, item in value.items():
            find_number_strings(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            find_number_strings(item, f"{where}[{i}]")


def read_config_text(path: str | Path, what: str = "config file") -> str:
    """The text of the config file ``path``; ValueError of one line naming it when it is missing,
    a folder, unreadable or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give the file itself")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not a UTF-8 text file") from None
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be read ({err.strerror})") from None


def load_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """``path`` parsed with ``yaml.safe_load``; malformed YAML is a ValueError of one line naming
    the file, the line and the column."""
    text = read_config_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{what} {path}: not valid YAML{where}: {problem}") from None
