"""Params files: YAML overrides for a notebook's parameters cell, checked before anything runs.

A notebook declares its parameters in the cell tagged ``parameters``: plain assignments of
literals, whose values are the defaults a Jupyter or Colab user gets. A params file may override
any of them. It is checked against that cell *before* a kernel starts, so a typo or the YAML float
trap (YAML 1.1 reads ``1e-4`` as a string; ``1.0e-4`` is a float) fails in milliseconds with a
message that names the key, instead of silently running with the default or with a string where a
number belongs. The cell is read with :mod:`ast`, never executed.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnlib.experiment.yamlfile import (
    find_number_strings,
    is_number_string,
    load_yaml_file,
    number_string_error,
)


def parse_parameters(source: str, name: str = "parameters cell") -> dict[str, Any]:
    """Defaults declared by a parameters cell: ``name = <literal>`` lines, in order."""
    tree = ast.parse(source)
    defaults: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            raise ValueError(
                f"{name}, line {node.lineno}: only 'name = literal' assignments are allowed, "
                f"got {ast.unparse(node)!r}"
            )
        if not isinstance(target, ast.Name):
            raise ValueError(
                f"{name}, line {node.lineno}: assign to a plain name, got {ast.unparse(target)!r}"
            )
        try:
            defaults[target.id] = ast.literal_eval(value)
        except ValueError as err:
            raise ValueError(
                f"{name}, line {node.lineno}: the default of {target.id!r} must be a literal, "
                f"got {ast.unparse(value)!r}"
            ) from err
    return defaults


def load_params(path: str | Path) -> dict[str, Any]:
    """A params YAML file as a dict (an empty file is no overrides)."""
    data = load_yaml_file(path, "params file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a params file must be a mapping of parameter names to values")
    return data


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_value(where: str, expected: Any, got: Any) -> None:
    """Raise if ``got`` cannot stand in for the default ``expected`` (recursing into lists and
    dicts); a number written as a YAML string is reported as such wherever a str is not expected."""
    if is_number_string(got) and not isinstance(expected, str):
        raise number_string_error(where, got)
    if expected is None:
        find_number_strings(got, where)
        return
    if isinstance(expected, bool) or isinstance(got, bool):
        ok = isinstance(expected, bool) and isinstance(got, bool)
    elif isinstance(expected, float):
        ok = isinstance(got, int | float)
    else:
        ok = isinstance(got, type(expected))
    if not ok:
        raise TypeError(f"{where}: expected {_type_name(expected)}, got {_type_name(got)} {got!r}")
    if isinstance(got, list):
        example = expected[0] if expected else None
        for i, item in enumerate(got):
            _check_value(f"{where}[{i}]", example, item)
    elif isinstance(got, dict):
        for key, item in got.items():
            _check_value(f"{where}[{key!r}]", expected.get(key), item)


def validate_params(
    params: Mapping[str, Any], defaults: Mapping[str, Any], source: str = "params"
) -> None:
    """Every key must be a notebook parameter and every value must fit the default's type."""
    for key, value in params.items():
        if key not in defaults:
            raise ValueError(
                f"{source}: unknown parameter {key!r}; valid parameters: {sorted(defaults)}"
            )
        _check_value(f"{source}: parameter {key!r}", defaults[key], value)
