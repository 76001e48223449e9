"""Model registry: name -> factory, so configs, the CLI and user code build models by name.

A factory is a plain function returning an ``nn.Module``; ``@register_model`` records it under its
function name (or an explicit ``name``). Model modules register themselves when
``bnnlib.models`` imports them, so any module can add models without touching this file.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import torch
from torch import nn

from bnnlib.registry import Registry

ModelFactory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=ModelFactory)

_MODELS: Registry[ModelFactory] = Registry("model", sort=True)


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
        _MODELS.add(name or factory.__name__, factory, factory)
        return factory

    return decorate if fn is None else decorate(fn)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return _MODELS.names()


def get_model_factory(name: str) -> ModelFactory:
    """The factory registered as ``name``; ValueError listing the valid names otherwise."""
    return _MODELS.get(name)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``.

    Unknown keyword arguments raise a TypeError naming them and the accepted ones, before the
    factory runs, so a typo in a config is not mistaken for a default.
    """
    factory = get_model_factory(name)
    _check_names(name, factory, kwargs)
    return factory(**kwargs)


def _keyword_parameters(factory: ModelFactory) -> dict[str, inspect.Parameter]:
    params = inspect.signature(factory).parameters
    return {
        p.name: p
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _check_names(name: str, factory: ModelFactory, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = list(_keyword_parameters(factory))
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown and not takes_any:
        raise TypeError(
            f"model {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts {', '.join(accepted)}"
        )


def check_model_args(
    name: str, kwargs: dict[str, Any], input_shape: Sequence[int] | None = None
) -> nn.Module:
    """Validate ``kwargs`` of model ``name`` without allocating it: names against the factory's
    signature, each value against the type of its default (numbers finite), then a build on the
    meta device and, with ``input_shape`` (one example, no batch dimension), a forward pass there.
    Errors name the argument and what it accepts. Returns the meta model (for its size)."""
    factory = get_model_factory(name)
    _check_names(name, factory, kwargs)
    params = _keyword_parameters(factory)
    for key, value in kwargs.items():
        if key in params:
            _check_arg_type(name, key, value, params[key].default)
    if "norm_layer" in kwargs:
        from bnnlib.norms import NORM_KINDS

        if kwargs["norm_layer"] not in NORM_KINDS:
            raise ValueError(
                f"model {name!r} argument norm_layer={kwargs['norm_layer']!r}; choose one of "
                f"{', '.join(NORM_KINDS)}"
            )
    try:
        with torch.device("meta"):
            model = factory(**kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"model {name!r} cannot be built with {kwargs}: {exc}") from None
    if input_shape is not None:
        check_input_shape(name, model, input_shape, kwargs)
    return model


def check_input_shape(
    name: str, model: nn.Module, input_shape: Sequence[int], kwargs: dict[str, Any] | None = None
) -> None:
    """Run one meta-device forward pass of ``model`` (moved to the meta device, so pass a model
    built there or one that may lose its weights) on a batch of ``input_shape``; ValueError
    naming the shape the model expects when it cannot take it."""
    x = torch.empty((2, *input_shape), device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.to("meta")(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"input shape {','.join(map(str, input_shape))} does not fit model {name!r} "
            f"({first}); it takes {expected_input_shape(name, kwargs or {})}"
        ) from None
    finally:
        model.train(was_training)


def expected_input_shape(name: str, kwargs: dict[str, Any]) -> str:
    """The input shape model ``name`` takes with ``kwargs``, as its factory's defaults say."""
    params = _keyword_parameters(get_model_factory(name))
    given = {k: p.default for k, p in params.items()} | kwargs
    if "in_channels" in given:
        side = given.get("image_size")
        if side is None:
            return f"{given['in_channels']} channels ({given['in_channels']},H,W)"
        return f"{given['in_channels']},{side},{side}"
    if "in_features" in given:
        n = given["in_features"]
        side = math.isqrt(n) if isinstance(n, int) else 0
        square = f" (or 1,{side},{side})" if side * side == n else ""
        return f"{n} features{square}"
    return "the shape of its training data"


def _check_arg_type(name: str, key: str, value: Any, default: Any) -> None:
    where = f"model {name!r} argument {key}={value!r}"
    if default is inspect.Parameter.empty or default is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{where}: expected True or False")
    elif isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{where}: expected a number")
        if not math.isfinite(value):
            raise ValueError(f"{where}: must be a finite number")
        if isinstance(default, int) and not isinstance(value, int):
            raise TypeError(f"{where}: expected an int")
        if key == "width" and not value > 0:
            raise ValueError(f"{where}: must be > 0 (1.0 is the paper's width, 0.25 a quarter)")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{where}: expected a string")
    elif isinstance(default, tuple | list) and not isinstance(value, tuple | list):
        raise TypeError(f"{where}: expected a list")


def scaled_width(count: int, width: float) -> int:
    """``count`` filters/units times the width multiplier every factory accepts (at least 1), so
    ``width=0.25`` narrows a network 4x for CPU-sized runs while keeping its layer list."""
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ValueError(f"width must be a number > 0, got {width!r}")
    if not math.isfinite(width):
        raise ValueError(f"width must be finite, got {width!r}")
    return max(1, round(count * width))
