"""Model registry: name -> factory, so configs, the CLI and user code build models by name.

A factory is a plain function returning an ``nn.Module``; ``@register_model`` records it under its
function name (or an explicit ``name``). Model modules register themselves when
``bnnlib.models`` imports them, so any module can add models without touching this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar, overload

from torch import nn

ModelFactory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


@overload
def register_model(fn: FactoryT, *, name: str | None = None) -> FactoryT: ...


@overload
def register_model(
    fn: None = None, *, name: str | None = None
) -> Callable[[FactoryT], FactoryT]: ...


def register_model(
    fn: FactoryT | None = None, *, name: str | None = None
) -> FactoryT | Callable[[FactoryT], FactoryT]:
    """Register ``fn`` as a model factory; usable as ``@register_model`` or
    ``@register_model(name="...")``. Registering a name twice raises ValueError, because silently
    replacing a model would make a config build a different network than its name says."""

    def decorate(factory: FactoryT) -> FactoryT:
        key = name or factory.__name__
        if key in _MODELS:
            raise ValueError(
                f"model {key!r} is already registered by {_MODELS[key].__module__}."
                f"{_MODELS[key].__qualname__}"
            )
        _MODELS[key] = factory
        return factory

    return decorate if fn is None else decorate(fn)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def get_model_factory(name: str) -> ModelFactory:
    """The factory registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(list_models())}"
        ) from None


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``.

    Unknown keyword arguments raise a TypeError naming them and the accepted ones, before the
    factory runs, so a typo in a config is not mistaken for a default.
    """
    factory = get_model_factory(name)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [
        p.name
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown and not takes_any:
        raise TypeError(
            f"model {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts {', '.join(accepted)}"
        )
    return factory(**kwargs)


def scaled_width(count: int, width: float) -> int:
    """``count`` filters/units times the width multiplier every factory accepts (at least 1), so
    ``width=0.25`` narrows a network 4x for CPU-sized runs while keeping its layer list."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return max(1, round(count * width))
