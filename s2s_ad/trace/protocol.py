"""The staging protocol: how a value becomes an IR atom and how a call is staged.

The trace layer knows IR values (``Var``, ``Lit``), NumPy arrays and Python values; the
layers above it (Tensors, Parameters, Cells, primitives, transformed functions) register here,
when they are imported, how their objects take part in tracing. See :mod:`s2s_ad.trace` for
the protocol as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UnsupportedSyntaxError
from ..ir import Lit, Var, flatten

if TYPE_CHECKING:
    from .tracer import Tracer

Stager = Callable[[Any, "Tracer", list, dict], Any]
"""``stage(obj, tracer, args, kwargs) -> value``: stage a call of ``obj`` (``args`` may hold atoms)."""

_CALL_STAGERS: dict[int, tuple[Any, Stager]] = {}  # id(obj) -> (obj, stager): calls of obj itself
_TYPE_STAGERS: dict[type, Stager] = {}  # calls of instances
_PREDICATE_STAGERS: list[tuple[Callable[[Any], bool], Stager]] = []
_CONSTRUCTORS: list[type] = []
_STATIC_TYPES: list[type] = []
_STATIC_OBJECTS: dict[int, Any] = {}


@dataclass(frozen=True)
class Leaf:
    """How instances of a registered leaf type become atoms: ``array(v)`` is its data; a
    ``parameter`` leaf becomes an input of the program (one per object, named ``name(v)``),
    any other a constant of the program."""

    array: Callable[[Any], np.ndarray]
    parameter: bool = False
    name: Callable[[Any], str | None] | None = None


_LEAVES: dict[type, Leaf] = {}


def register_stager(cls: type, stage: Stager) -> None:
    """Stage calls of instances of ``cls`` (and of its subclasses) with ``stage``."""
    _TYPE_STAGERS[cls] = stage


def register_call(obj: Any, stage: Stager) -> None:
    """Stage calls of the object ``obj`` itself (a function; a class called as a constructor,
    its subclasses not included) with ``stage``."""
    _CALL_STAGERS[id(obj)] = (obj, stage)


def register_stager_where(predicate: Callable[[Any], bool], stage: Stager) -> None:
    """Stage calls of any callable for which ``predicate`` holds with ``stage`` (tried in the
    order registered, after ``__s2s_stage__``, :func:`register_call` and :func:`register_stager`)."""
    _PREDICATE_STAGERS.append((predicate, stage))


def register_constructor(cls: type) -> None:
    """Calling ``cls`` (or a subclass) in compiled code constructs it from compile-time constants."""
    _CONSTRUCTORS.append(cls)


def register_static(target: Any) -> None:
    """A compile-time object: a class means its instances, anything else that object. Its
    attributes can be read in compiled code, and calling it (where no stager applies) runs it
    while compiling, on compile-time constants."""
    if isinstance(target, type):
        _STATIC_TYPES.append(target)
    else:
        _STATIC_OBJECTS[id(target)] = target


def register_leaf(cls: type, leaf: Leaf) -> None:
    """Instances of ``cls`` (and of its subclasses) are tensor values: see :class:`Leaf`."""
    _LEAVES[cls] = leaf


def leaf_of(v: Any) -> Leaf | None:
    """The registered :class:`Leaf` of ``v``'s type (NumPy arrays and scalars are constants)."""
    if isinstance(v, (np.ndarray, np.generic)):
        return _ARRAY_LEAF
    for c in type(v).__mro__:
        got = _LEAVES.get(c)
        if got is not None:
            return got
    return None


_ARRAY_LEAF = Leaf(np.asarray)


def is_computed_instance(classes: tuple[Any, ...]) -> bool:
    """``isinstance(v, classes)`` for a value ``v`` computed in compiled code: true where one of
    ``classes`` is (a base of) a registered leaf type that is not a parameter (a Tensor)."""
    return any(
        isinstance(c, type) and issubclass(cls, c)
        for cls, leaf in _LEAVES.items()
        if not leaf.parameter
        for c in classes
    )


def is_tensor_value(v: Any) -> bool:
    """Whether ``v`` is a tensor while tracing: an atom or a leaf (a Tensor, an array)."""
    return isinstance(v, (Var, Lit)) or leaf_of(v) is not None


def is_static(v: Any) -> bool:
    """Whether ``v`` was registered with :func:`register_static`."""
    if _STATIC_OBJECTS.get(id(v)) is v:
        return True
    return any(isinstance(v, t) for t in _STATIC_TYPES)


def find_stager(f: Any) -> Stager | None:
    """The stager of ``f``: its type's ``__s2s_stage__``, else the first registered one that applies."""
    stage = getattr(type(f), "__s2s_stage__", None)
    if stage is not None:
        return stage
    got = _CALL_STAGERS.get(id(f))
    if got is not None and got[0] is f:
        return got[1]
    for c in type(f).__mro__:
        stage = _TYPE_STAGERS.get(c)
        if stage is not None:
            return stage
    for predicate, stage in _PREDICATE_STAGERS:
        if predicate(f):
            return stage
    if isinstance(f, type) and any(issubclass(f, c) for c in _CONSTRUCTORS):
        return construct_static
    if is_static(f):
        return call_static
    return None


def has_traced(args: Any) -> bool:
    """Whether any leaf of ``args`` (a list, tuple or dict tree) is an atom computed while tracing."""
    return any(isinstance(a, (Var, Lit)) for a in flatten(args)[0])


def construct_static(cls: type, tracer: Tracer, args: list, kwargs: dict) -> Any:
    """Construct ``cls`` (a primitive, a GradOperation, a constant Tensor) while compiling."""
    if has_traced([list(args), list(kwargs.values())]):
        raise tracer.error(
            f"`{cls.__name__}(...)` must be created from compile-time constants here", UnsupportedSyntaxError
        )
    return cls(*args, **kwargs)


def call_static(f: Any, tracer: Tracer, args: list, kwargs: dict) -> Any:
    """Call the compile-time object ``f`` while compiling, on compile-time constants."""
    if has_traced([list(args), list(kwargs.values())]):
        raise tracer.error(f"`{name_of(f)}` must be called with compile-time constants here")
    return f(*args, **kwargs)


def name_of(f: Any) -> str:
    """How a callable is named in messages."""
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__


def describe(v: Any) -> str:
    """``v`` in an error message: a tensor's aval, a class's name, else the object's type."""
    if isinstance(v, (Var, Lit)):
        return f"a tensor {v.aval}"
    if isinstance(v, type):
        return f"the class {v.__name__}"
    return f"an object of type {type(v).__module__}.{type(v).__qualname__}"


def unwrap_function(f: Any) -> Any:
    """The plain function under decorators that are transparent in compiled code: an object
    with a ``__s2s_function__`` attribute (``@jit``) stands for that function."""
    while hasattr(type(f), "__s2s_function__"):
        f = f.__s2s_function__
    return f
