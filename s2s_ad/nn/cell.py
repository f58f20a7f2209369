"""``nn.Cell``: a network whose ``construct`` is compiled from its Python source."""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, cast

from .. import context
from ..api import arg_names_of
from ..custom import stage_with_bprop
from ..errors import ArgumentError, S2SError
from ..runtime import cache_for, calls_cache, staged
from ..tensor import Parameter
from ..trace.protocol import register_stager_where, register_static, unwrap_function
from ..trace.sources import state_with_sources, state_without_sources
from ..trace.tracer import Tracer


class Cell:
    """Base class of networks. Subclasses define ``construct``; calling the cell compiles
    ``construct`` for the arguments' shapes and dtypes (once) and runs the compiled code."""

    training: bool  # training mode (set_train), set in __init__

    def __init__(self, auto_prefix: bool = True, flags: Any = None):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_cells", OrderedDict())
        object.__setattr__(self, "training", False)
        object.__setattr__(self, "_auto_prefix", bool(auto_prefix))

    def _dicts(self) -> tuple[OrderedDict, OrderedDict]:
        if "_params" not in self.__dict__:
            Cell.__init__(self)
        return self.__dict__["_params"], self.__dict__["_cells"]

    def __setattr__(self, name: str, value: Any) -> None:
        params, cells = self._dicts()
        params.pop(name, None)
        cells.pop(name, None)
        if isinstance(value, Parameter):
            if not value._named:
                value.name = name
                value._named = True
            params[name] = value
        elif isinstance(value, Cell):
            cells[name] = value
            if self.__dict__.get("_auto_prefix", True):
                value.update_parameters_name(f"{name}.")
        elif _holds_modules(value):
            # A list, tuple or dict of Cells or Parameters (``self.layers = [nn.Dense(...), ...]``)
            # is registered like attributes, element by element, named ``layers.0``, ... as in
            # MindSpore. It is walked when parameters are listed, so later appends count too.
            _name_container(value, name, self.__dict__.get("_auto_prefix", True))
            cells[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        params, cells = self._dicts()
        params.pop(name, None)
        cells.pop(name, None)
        object.__delattr__(self, name)

    def construct(self, *args: Any) -> Any:
        raise S2SError(f"{type(self).__name__} does not define construct()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise ArgumentError(f"{type(self).__name__}: keyword arguments are not supported; pass inputs positionally")
        name = type(self).__name__
        return staged(
            calls_cache(self, ("forward",)),
            context.backend(),
            args,
            lambda: (f"{name}_construct", arg_names_of(self, len(args)), f"{name}.construct, compiled."),
            lambda fe, vals: fe.call(self, vals),
            origin=self,
        ).call(args)

    def _s2s_function(self) -> Any:
        """The Python function a call of this cell runs: its class's ``construct``, bound. The
        API names compiled programs and their arguments after it, and binds keyword arguments
        by its signature."""
        construct = type(self).construct
        bind = getattr(type(construct), "__get__", None)  # a function, or @jit's JitFunction
        return construct if bind is None else bind(construct, self, type(self))

    def __s2s_stage__(self, tr: Tracer, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Inside compiled code a Cell's ``construct`` is inlined."""
        if type(self).construct is Cell.construct:
            raise tr.error(f"{type(self).__name__} does not define construct()", ArgumentError)
        return stage_construct(self, tr, list(args), kwargs)

    # ------------------------------------------------------------------ parameters
    def parameters_and_names(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for name, p in self._all_params(prefix, recurse):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_params(self, prefix: str, recurse: bool) -> Iterator[tuple[str, Parameter]]:
        params, cells = self._dicts()
        for n, p in params.items():
            yield prefix + n, p
        if recurse:
            for cn, c in self._named_children():
                yield from c._all_params(f"{prefix}{cn}.", True)
        # Parameters held in lists/tuples/dicts come last, so that one that also belongs to a
        # sub-cell (``self.weights = ParameterTuple(net.trainable_params())``) keeps that
        # sub-cell's name and place.
        for cn, c in cells.items():
            if not isinstance(c, Cell):
                for en, e in _container_items(c, cn):
                    if isinstance(e, Parameter):
                        yield prefix + en, e

    def _named_children(self) -> Iterator[tuple[str, Cell]]:
        """Sub-cells in registration order, those inside lists/tuples/dicts named ``name.i``."""
        for cn, c in self._dicts()[1].items():
            if isinstance(c, Cell):
                yield cn, c
            else:
                for en, e in _container_items(c, cn):
                    if isinstance(e, Cell):
                        yield en, e

    def update_parameters_name(self, prefix: str = "", recurse: bool = True) -> None:
        """Prefix the names of this cell's Parameters with ``prefix``: a cell assigned to an
        attribute ``fc1`` of another (with ``auto_prefix``, the default) gets ``fc1.``, so that
        its Parameters are named by their path (``fc1.weight``, ``net.layers.0.bias``), as in
        MindSpore."""
        for _, p in self.parameters_and_names(recurse=recurse):
            p.name = prefix + p.name

    def get_parameters(self, expand: bool = True) -> Iterator[Parameter]:
        for _, p in self.parameters_and_names(recurse=expand):
            yield p

    def trainable_params(self, recurse: bool = True) -> list[Parameter]:
        """Parameters with ``requires_grad``: the cell's own first, then its sub-cells'."""
        return [p for _, p in self.parameters_and_names(recurse=recurse) if p.requires_grad]

    def untrainable_params(self, recurse: bool = True) -> list[Parameter]:
        return [p for _, p in self.parameters_and_names(recurse=recurse) if not p.requires_grad]

    def cells(self) -> list[Cell]:
        return [c for _, c in self._named_children()]

    def name_cells(self) -> OrderedDict[str, Cell]:
        return OrderedDict(self._named_children())

    def set_grad(self, requires_grad: bool = True) -> Cell:
        return self

    def set_train(self, mode: bool = True) -> Cell:
        """Training (``True``) or evaluation mode for this cell and all its sub-cells, as in
        MindSpore (``Dropout`` depends on it). A cell whose mode changes drops its compiled
        programs, which were traced in the other mode; programs of other cells and functions
        that call it are traced again too (:func:`s2s_ad.context.training_mode_changed`)."""
        changed = False
        for c in [self, *(c for _, c in self._all_cells())]:
            if c.training != bool(mode):
                object.__setattr__(c, "training", bool(mode))
                cache_for(c).clear()
                changed = True
        if changed:
            cache_for(self).clear()
            context.training_mode_changed()
        return self

    def _all_cells(self) -> Iterator[tuple[str, Cell]]:
        for n, c in self._named_children():
            yield n, c
            for m, d in c._all_cells():
                yield f"{n}.{m}", d

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """A Cell pickles as its attributes (Parameters with their values and names, sub-cells,
        options), never its compiled programs; the methods of a class defined in ``__main__``
        or a function (which cloudpickle pickles by value) travel with their source."""
        return state_with_sources(dict(self.__dict__), type(self))

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state_without_sources(state))

    def __repr__(self) -> str:
        subs = "".join(f"\n  ({n}): {c!r}".replace("\n", "\n  ") for n, c in self._named_children())
        return f"{type(self).__name__}<{subs}\n>" if subs else f"{type(self).__name__}<>"


def _holds_modules(value: Any) -> bool:
    """Whether ``value`` is a list, tuple or dict holding Cells or Parameters (at any depth)."""
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, (Cell, Parameter)) or _holds_modules(v) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, (Cell, Parameter)) or _holds_modules(v) for v in value.values())
    return False


def _container_items(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(name, element)`` for the elements of a container attribute, nested ones flattened:
    ``layers.0``, ``layers.1``, ``blocks.enc.0``."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        name = f"{prefix}.{k}"
        if isinstance(v, (list, tuple, dict)):
            yield from _container_items(v, name)
        else:
            yield name, v


def _name_container(value: Any, prefix: str, auto_prefix: bool = True) -> None:
    for n, v in _container_items(value, prefix):
        if isinstance(v, Parameter) and not v._named:
            v.name = n
            v._named = True
        elif isinstance(v, Cell) and auto_prefix:
            v.update_parameters_name(f"{n}.")


def construct_function(cell: Any) -> Any:
    """The function a Cell's ``construct`` runs (unwrapped from ``@jit``)."""
    return unwrap_function(type(cell).construct)


def stage_construct(cell: Cell, tr: Tracer, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Inline ``cell.construct(*args)``; a Cell with a ``bprop(self, *inputs, out, dout)`` is
    one custom-derivative call whose gradient is its ``bprop`` (MindSpore's rule)."""

    def primal(fe: Tracer, vals: list[Any]) -> Any:
        return fe.inline(construct_function(cell), [cell, *vals], {}, owner=cell)

    if getattr(type(cell), "bprop", None) is None:
        return tr.inline(construct_function(cell), [cell, *args], kwargs, owner=cell)
    if kwargs:
        raise tr.error(f"{type(cell).__name__}: keyword arguments are not supported with a bprop", ArgumentError)
    return stage_with_bprop(tr, type(cell).__name__, getattr(cell, "bprop"), primal, args)  # noqa: B009


def _is_cell_method(f: Any) -> bool:
    return isinstance(f, types.MethodType) and isinstance(f.__self__, Cell)


def _stage_cell_method(m: types.MethodType, tr: Tracer, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``self.construct(x)``, ``self.helper(x)``: the method's source is inlined."""
    if m.__name__ == "construct":
        return stage_construct(cast(Cell, m.__self__), tr, args, kwargs)  # _is_cell_method chose m
    return tr.inline(unwrap_function(m.__func__), [m.__self__, *args], kwargs, owner=m.__self__)


register_static(Cell)  # a Cell's attributes (sub-cells, Parameters, options) are compile-time values
register_stager_where(_is_cell_method, _stage_cell_method)
