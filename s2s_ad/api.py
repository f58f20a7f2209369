"""The differentiation API: MindSpore's ``GradOperation``, ``grad``, ``value_and_grad``,
``jvp`` and ``vjp`` (and the ``nn`` wrappers built on them), plus ``jit``.

No AD logic lives here. Each API makes a :class:`Transformed` callable: called from Python it
maps its arguments to a cache key and runs compiled code; called inside another compiled
function (``__s2s_stage__``) it traces the wrapped function, builds the derivative program
(:mod:`s2s_ad.derivatives` maps the API's flags onto :mod:`s2s_ad.ad.reverse` or
:mod:`s2s_ad.ad.forward`) and inlines it, which is how derivatives of derivatives are formed.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from . import context, ops
from .backend import standalone_source
from .codegen import generate
from .derivatives import grad_program, jvp_args_program
from .errors import ArgumentError, ArgumentValueError, NotSupportedError, S2SError
from .ir import Aval, Lit, Program, Var, arg_leaf_ranges, flatten, tree_str, treedef_leaves, unflatten
from .lru import ProgramCache
from .opt import optimize
from .primitives import fmt_shape, to_batch_dim
from .runtime import Compiled, cache_for, cached, call_key, calls_cache, fast_call, identifier, staged
from .tensor import Parameter, ParameterTuple, Tensor
from .trace.interpreter import _Closure, trace
from .trace.protocol import is_tensor_value, register_constructor, register_static
from .trace.sources import from_module, module_reference, state_with_sources, state_without_sources
from .trace.tracer import Tracer, abstractify, inline_program

# ---------------------------------------------------------------------------- naming helpers


def _runs(fn: Any) -> Any:
    """The Python function a call of ``fn`` runs: ``fn`` itself, or what an object that runs
    another function says (a Cell's ``_s2s_function()`` is its ``construct``, bound)."""
    method = getattr(type(fn), "_s2s_function", None)
    return fn if method is None else method(fn)


def callable_name(fn: Any) -> str:
    if isinstance(fn, Transformed):
        return f"{fn.prefix}_{callable_name(fn.fn)}"
    if hasattr(type(fn), "_s2s_function"):  # a Cell: named after its class
        return type(fn).__name__
    return getattr(fn, "__name__", type(fn).__name__)


def arg_names_of(fn: Any, n: int) -> list[str]:
    """Parameter names of ``fn`` (a Cell's construct, a function or a transformed function)
    for ``n`` arguments."""
    if isinstance(fn, Transformed):
        extra = fn.extra_args(n)
        return arg_names_of(fn.fn, n - len(extra)) + extra
    names: list[str] = []
    try:
        params = list(inspect.signature(_runs(fn)).parameters.values())
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            break
        names.append(p.name)
    names = names[:n]
    return names + [f"arg{i}" for i in range(len(names), n)]


# ---------------------------------------------------------------------------- argument checks


def normalize_weights(weights: Any, who: str) -> tuple[Parameter, ...] | None:
    if weights is None:
        return None
    if isinstance(weights, Parameter):
        return (weights,)
    if isinstance(weights, (ParameterTuple, list, tuple)):
        if not weights:
            raise ArgumentValueError(
                f"{who}: weights is empty (the net has no trainable parameters?): there is no weight to "
                "differentiate; pass grad_position only, or give the net Parameters (Cells in plain lists, "
                "tuples and dicts are registered too)"
            )
        for w in weights:
            if not isinstance(w, Parameter):
                raise ArgumentError(f"{who}: weights must be Parameters, got an element of type {type(w).__name__}")
        return tuple(weights)
    raise ArgumentError(
        f"{who}: weights must be a ParameterTuple, a list of Parameters or a Parameter, got {type(weights).__name__}"
    )


def _check_bool(who: str, **flags: Any) -> None:
    for n, v in flags.items():
        if not isinstance(v, bool):
            raise ArgumentError(f"{who}: {n} must be a bool, got {type(v).__name__}")


def check_target(who: str, target: Any) -> str | None:
    """Validate a decorator's ``target`` (None, "cpu" or "cuda"); warn once when "cuda" cannot run
    here (the function then runs on the CPU)."""
    if target is None:
        return None
    if target not in ("cpu", "cuda"):
        raise ArgumentValueError(f"{who}: target must be 'cpu', 'cuda' or None, got {target!r}")
    if target == "cuda":
        context.warn_without_cuda(f"{who}(target='cuda')", stacklevel=4)
    return target


def _check_callable(who: str, fn: Any) -> None:
    if isinstance(fn, _Closure):
        raise NotSupportedError(
            f"{who}: `{fn.__name__}` is a nested function or lambda defined in compiled code; {who} applied there "
            "takes a function defined at module level (or a Cell): move it out and pass the values it uses as arguments"
        )
    if not callable(fn):
        raise ArgumentError(f"{who}: expected a Cell or a function to differentiate, got {type(fn).__name__}")


def _check_positions(
    who: str, grad_position: Any, name: str = "grad_position", allow_none: bool = True
) -> tuple[int, ...] | None:
    """Validate argument positions (``grad_position``, ``argnums``): an int or a non-empty
    tuple of distinct non-negative ints (or None where allowed)."""
    if grad_position is None and allow_none:
        return None
    if isinstance(grad_position, bool) or not isinstance(grad_position, (int, tuple)):
        kinds = "an int, a tuple of ints or None" if allow_none else "an int or a tuple of ints"
        raise ArgumentError(f"{who}: {name} must be {kinds}, got {grad_position!r}")
    pos = (grad_position,) if isinstance(grad_position, int) else grad_position
    if not pos:
        raise ArgumentValueError(f"{who}: {name} must not be an empty tuple")
    for p in pos:
        if isinstance(p, bool) or not isinstance(p, int):
            raise ArgumentError(f"{who}: {name} must contain ints, got {p!r}")
        if p < 0:
            raise ArgumentValueError(f"{who}: {name} must be non-negative, got {p}")
    if len(set(pos)) != len(pos):
        raise ArgumentValueError(f"{who}: {name} {grad_position} repeats a position")
    return pos


def trace_abstract(
    fn: Any, args: list[Any], float_positions: Any = (), float_params: frozenset[int] = frozenset()
) -> Program:
    """Trace ``fn`` applied to the abstract versions of staged values (Vars → Avals).

    Integer tensors in the argument positions ``float_positions`` are traced as
    :data:`INT_GRAD_DTYPE` values, and so are uses of the Parameters whose ids are in
    ``float_params``: that is how integer inputs are differentiated (see
    :func:`differentiated_program`)."""

    def abstract(v: Any, promote: bool) -> Any:
        if isinstance(v, (Var, Lit)):
            v = v.aval
        elif isinstance(v, (tuple, list)):
            return type(v)(abstract(x, promote) for x in v)
        elif isinstance(v, dict):
            return {k: abstract(x, promote) for k, x in v.items()}
        else:
            v = abstractify(v)
        if promote and isinstance(v, Aval) and v.dtype.kind in "iu":
            return Aval(v.shape, INT_GRAD_DTYPE)
        return v

    prog = trace(
        lambda fe, vals: fe.call(fn, vals),
        [abstract(a, i in float_positions) for i, a in enumerate(args)],
        callable_name(fn),
        arg_names_of(fn, len(args)),
        float_params=float_params,
    )
    _check_closed(prog, fn)
    return prog


def _check_closed(prog: Program, fn: Any) -> None:
    """A nested function traced on its own (to be differentiated or batched) must not read a
    value computed by the code around it (a closure over a traced value): its program would
    use a variable it does not define. That is reported here, naming the function."""
    defined = set(prog.invars)
    for e in prog.eqns:
        for a in e.ins:
            if isinstance(a, Var) and a not in defined:
                raise NotSupportedError(
                    f"{callable_name(fn)} reads a value ({a.aval}) computed outside it by the compiled code around "
                    "it; a function given to a transform there must take every computed value it uses as an "
                    "argument (pass it as an input, e.g. `lambda y, w: f(y, w)` with `w` an argument)"
                )
        defined.update(e.outs)
    for o in prog.outs:
        if isinstance(o, Var) and o not in defined:
            raise NotSupportedError(
                f"{callable_name(fn)} returns a value ({o.aval}) that its own trace did not compute; a function given "
                "to a transform in compiled code must take every computed value it uses as an argument"
            )


# The dtype in which the derivative with respect to an integer input or Parameter is computed
# (MindSpore's: integer tensors meeting float math become float32). The result is cast to the
# integer dtype once, at the end.
INT_GRAD_DTYPE = np.dtype(np.float32)


_NUMBER_TYPES = frozenset((bool, int, float))
_NUMBER_DTYPES = {bool: np.dtype(np.bool_), int: np.dtype(np.int64), float: np.dtype(np.float32)}


_CONTAINER_TYPES = frozenset((tuple, list, dict))
_NUMBER_OR_CONTAINER = _NUMBER_TYPES | _CONTAINER_TYPES


def _map_numbers(v: Any, leaf: Callable[[Any], Any], nested: bool = False) -> Any:
    """``v`` with ``leaf`` applied to its Python numbers: at the top level every number, inside
    a tuple, list or dict (any depth) the floats only. Integers in a container stay constants,
    since they are shapes, axes and indices far more often than data."""
    t = type(v)
    if t in _NUMBER_TYPES:
        return leaf(v) if t is float or not nested else v
    if t is tuple or t is list:
        return t(_map_numbers(a, leaf, True) for a in v)
    if t is dict:
        return {k: _map_numbers(a, leaf, True) for k, a in v.items()}
    return v


def number_input(v: Any) -> Any:
    """A Python number passed where a derivative is taken, as the tensor it stands for: a
    0-d float32 for a float (MindSpore's dtype for Python floats), int64 for an int, bool
    for a bool (``Tensor(v)``'s dtypes); a Python float inside a tuple, list or dict too (an
    int there stays a constant). Anything else (a NumPy scalar keeps its dtype) is returned
    unchanged."""
    return _map_numbers(v, Tensor)


def _number_atom(v: Any) -> Any:
    """Inside compiled code: a Python number at a differentiated position as a 0-d literal of
    :func:`number_input`'s dtype (so the derivative program takes it as an input); an int
    kept constant (:class:`_StaticInt`) as the plain int."""
    if type(v) is _StaticInt:
        return int(v)
    return _map_numbers(v, lambda n: Lit(n, _NUMBER_DTYPES[type(n)]))


def _leaf_avals(fn_prog: Program, pos: int) -> list[Aval]:
    lo, hi, _ = arg_leaf_ranges(fn_prog)[pos]
    return [v.aval for v in fn_prog.arg_vars[lo:hi]]


def _weight_leaves(prog: Program, weights: list[Parameter]) -> list[int | Aval]:
    """Each weight as the position of its variable among ``prog``'s inputs, or, for a weight
    ``prog`` does not read, its abstract value (its gradient is zeros)."""
    res: list[int | Aval] = []
    for p in weights:
        idx = next((i for i, q in enumerate(prog.parameters) if q is p), None)
        res.append(Aval(tuple(p.shape), p.asnumpy().dtype) if idx is None else prog.n_args + idx)
    return res


def differentiated_program(
    fe: Tracer,
    who: str,
    fn: Any,
    args: list[Any],
    inner: Program,
    positions: list[int],
    weights: list[Parameter],
    explicit: bool,
    updates_ok: bool = False,
) -> Program:
    """The program whose derivative is taken for ``fn(*args)`` (``inner`` is its trace).

    * A bool input at an ``explicit`` position (asked for by ``grad_position``, ``argnums``
      or GradOperation's first input) is an error: bool values have no derivative. Where all
      inputs are differentiated (``get_all``, ``vjp``, ``jvp``), and for a bool leaf of a
      tuple/list/dict argument (a mask beside the data), the gradient is all False.
    * Integer inputs at ``positions`` and integer ``weights`` are traced as
      :data:`INT_GRAD_DTYPE`: the derivative is computed in float and cast to the integer
      dtype once by the caller (as MindSpore does), not truncated after every operation.
      An integer input that cannot be traced as float (it feeds an op that takes integers
      only, such as OneHot's indices) stays an integer. ``inner`` is returned when nothing
      is promoted.
    * A program that assigns Parameters (``ops.assign``: BatchNorm's moving statistics, the
      random-number key of Dropout) is differentiated without its assignments when
      ``updates_ok`` (the caller then inlines ``inner`` itself for the value, which makes the
      assignments once, after the derivative has read the values before them); otherwise it
      raises :class:`NotSupportedError`.
    """
    if inner.updates and updates_ok:
        diff = differentiated_program(fe, who, fn, args, _without_updates(inner), positions, weights, explicit)
        return diff if not diff.updates else _without_updates(diff)
    if inner.updates:
        names = ", ".join(inner.parameters[i].name for i in inner.updates)
        raise fe.error(
            f"{who}: {callable_name(fn)} assigns Parameter(s) {names} (ops.assign); a function with side "
            "effects cannot be differentiated. Differentiate the pure part and assign outside it "
            "(as nn.TrainOneStepCell does)",
            NotSupportedError,
        )
    promote = []
    for pos in positions:
        kinds = {av.dtype.kind for av in _leaf_avals(inner, pos)}
        if kinds == {"b"} and explicit:
            raise fe.error(
                f"{who}: input {pos} of {callable_name(fn)} is a bool tensor, and bool values are not "
                "differentiable; leave it out of the differentiated positions (or pass a float tensor)",
                ArgumentError,
            )
        if kinds & set("iu"):
            promote.append(pos)
    int_params = frozenset(id(w) for w in weights if w.asnumpy().dtype.kind in "iu")
    for w in weights:
        if w.asnumpy().dtype.kind == "b":
            raise fe.error(f"{who}: weight {w.name} is a bool Parameter, which is not differentiable", ArgumentError)
    if not promote and not int_params:
        return inner
    try:
        return trace_abstract(fn, args, frozenset(promote), int_params)
    except S2SError:
        # An integer input that feeds an operation taking only integers (OneHot's indices,
        # sparse labels) cannot be traced as float: it stays an integer, and that use, being
        # piecewise constant, contributes no gradient.
        ok = []
        for pos in promote:
            try:
                trace_abstract(fn, args, frozenset([pos]))
                ok.append(pos)
            except S2SError:
                pass
        if not ok and not int_params:
            return inner
        return trace_abstract(fn, args, frozenset(ok), int_params)


def _without_updates(prog: Program) -> Program:
    """``prog`` without its Parameter assignments (the equations only they used are dead code)."""
    return prog.replace(outs=prog.outs[: prog.n_results], updates=[])


def _cast_leaves(fe: Tracer, atoms: list[Any], avals: list[Aval]) -> list[Any]:
    return [fe.cast(a, av.dtype) for a, av in zip(atoms, avals)]


def _leaf_atoms(fe: Tracer, v: Any) -> list:
    leaves, _ = flatten(v)
    return [fe.atom(x) for x in leaves if isinstance(x, (Var, Lit)) or is_tensor_value(x)]


_CONSTANT = ("static", ())


def _flatten_like(value: Any, tree: Any) -> tuple[list[Any], Any]:
    """:func:`flatten` of ``value`` (a sens or tangent), where a Python number, None or ``()``
    standing for one of ``tree``'s constants (a number or static value among the inputs)
    gives that constant's tree and no leaf."""
    if tree == _CONSTANT and (value is None or type(value) in _NUMBER_TYPES or (type(value) is tuple and not value)):
        return [], _CONSTANT
    if tree is None or type(tree) is not tuple or not isinstance(value, (tuple, list, dict)):
        return flatten(value)
    kind, children = tree[0], tree[1]
    if kind == "dict" and isinstance(value, dict) and set(value) == set(tree[2]):
        pairs = [_flatten_like(value[k], c) for k, c in zip(tree[2], children)]
        return [x for p in pairs for x in p[0]], ("dict", tuple(p[1] for p in pairs), tree[2])
    if kind in ("tuple", "list") and isinstance(value, (tuple, list)) and len(value) == len(children):
        pairs = [_flatten_like(v, c) for v, c in zip(value, children)]
        return [x for p in pairs for x in p[0]], (
            "list" if isinstance(value, list) else "tuple",
            tuple(p[1] for p in pairs),
        )
    return flatten(value)


def check_like(
    fe: Tracer, what: str, of: str, value: Any, tree: Any, avals: list[Aval], of_leaf: str | None = None
) -> list:
    """Atoms of ``value`` (a sens or tangent), which must be structured like ``tree`` (``of``)
    with the shapes of ``avals`` (``of_leaf`` names one leaf's counterpart); each is cast to
    the dtype it pairs with."""
    leaves, vtree = _flatten_like(value, tree)
    if vtree != tree:
        raise fe.error(
            f"{what} must be structured like {of}: expected {tree_str(tree)}, got {tree_str(vtree)}", ArgumentError
        )
    atoms = []
    for i, (s, av) in enumerate(zip(leaves, avals)):
        if not (isinstance(s, (Var, Lit)) or is_tensor_value(s) or isinstance(s, (int, float))):
            raise fe.error(f"{what} must contain tensors, got {type(s).__name__}", ArgumentError)
        a = fe.atom(s, like=av.dtype)
        if isinstance(a, Lit) and av.shape:
            raise fe.error(
                f"{what} must be a tensor of shape {fmt_shape(av.shape)}, got the number {a.value}", ArgumentError
            )
        if a.shape != av.shape:
            where = f" (element {i})" if tree is not None else ""
            raise fe.error(
                f"{what}{where} has shape {fmt_shape(a.shape)} but {of_leaf or of} has shape {fmt_shape(av.shape)}",
                ArgumentError,
            )
        atoms.append(fe.cast(a, av.dtype))
    return atoms


# ---------------------------------------------------------------------------- base class


class Transformed:
    """A function made by one of s2s_ad's transforms. Calling it from Python compiles once per
    argument signature and then runs compiled code; inside compiled code it is inlined."""

    prefix = "transformed"
    target: str | None = None  # "cpu" | "cuda": overrides the context's device for calls from Python

    def __init__(self, fn: Any):
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = f"{self.prefix}_{callable_name(fn)}"
        self.__doc__ = getattr(fn, "__doc__", None)

    # subclasses -------------------------------------------------------------
    def key(self) -> tuple:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def cache_root(self) -> tuple[Any, tuple]:
        """The object whose compile cache holds this function's programs, and the key within
        it: the innermost function or Cell, and the keys of the transforms applied to it.
        ``grad(grad(f))`` built anew on every call still finds the programs compiled for
        the first one."""
        keys, fn = [self.key()], self.fn
        while isinstance(fn, Transformed) and not isinstance(fn, JitFunction):
            keys.append((type(fn).__name__, fn.key()))
            fn = fn.fn
        return fn, tuple(keys)

    def extra_args(self, n: int) -> list[str]:
        """Names of trailing arguments that are not ``fn``'s (a sens, tangents)."""
        return []

    def number_positions(self, n: int) -> range | list[int] | tuple[int, ...]:
        """The positions, of ``n`` arguments, where a Python number is differentiated (and so
        becomes a 0-d tensor input rather than a compile-time constant)."""
        return ()

    def implicit_numbers(self) -> bool:
        """Whether the numbers at :meth:`number_positions` are differentiated because every
        input is (``get_all``, vjp, jvp) rather than asked for one by one: then an int the
        function needs as a constant (a shape, an axis) stays one, with no gradient."""
        return False

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        raise NotImplementedError

    # calling ---------------------------------------------------------------
    # Until a program has run twice, a call looks its program up (:meth:`_call`). Then the
    # instance's class becomes a subclass of its own whose ``__call__`` is the function
    # fast_call generated for the last program called (:func:`_fast_class`): it checks the
    # arguments itself and calls the compiled code, one Python frame on the whole path, or
    # calls :meth:`_call` when they are not that program's. Another program, or a change of
    # context, puts the instance back in its class (:meth:`_drop_fast_call`).
    _s2s_calls: ProgramCache | None = None  # the programs compiled for this function, by call key
    _s2s_base: type | None = None  # in a fast call's class: the class it was made from
    _s2s_fast: Callable[..., Any] | None = None  # in a fast call's class: its ``__call__``

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the transformed function."""
        return self._call(args, kwargs)

    def _drop_fast_call(self) -> None:
        """Call through the lookup again (another program, or a change of context)."""
        base = type(self)._s2s_base
        if base is not None:
            self.__class__ = base

    def _call(self, args: tuple, kwargs: dict) -> Any:
        """A call that is not the last program's (or has keyword arguments): the program for
        the arguments' signature, looked up, loaded from the disk cache or compiled."""
        calls = self._s2s_calls
        fast = type(self)._s2s_fast
        if fast is not None and calls is not None:
            calls.used(fast.key)  # type: ignore[attr-defined]  # the most recently used until now
        if calls is not None and not kwargs:
            c = cached(calls, self.target, args, self)  # a program that ran before: one dict lookup
            if c is not None:
                fast = fast_call(c, args, calls)
                if fast is not None:
                    self.__class__ = _fast_class(type(self)._s2s_base or type(self), fast)
                    context._fast_calls.add(self)
                else:
                    self._drop_fast_call()
                return c.call(args)
        if kwargs:
            raise ArgumentError(
                f"{self.__name__} takes positional arguments only, got keyword argument(s) {', '.join(kwargs)}"
            )
        if calls is None:
            calls = self._s2s_calls = calls_cache(*self.cache_root())
        given = args
        if _NUMBER_OR_CONTAINER.intersection(map(type, args)):
            numbers = self.number_positions(len(args))
            args = tuple(number_input(a) if i in numbers else a for i, a in enumerate(args))
        backend = context.backend(self.target)
        try:
            c = self._staged(calls, backend, args)
        except S2SError:
            # A Python int at a differentiated position that the function uses as a shape,
            # axis or index cannot be a tensor input: it is kept a constant (no gradient,
            # ``()``), and this signature remembers that.
            if not self.implicit_numbers() or _static_ints(given, args) is None:
                raise
            out = self._call_static_ints(calls, backend, given, args)
            calls.put(call_key(backend, args), _STATIC_INTS)
            return out
        if c is _STATIC_INTS:
            return self._call_static_ints(calls, backend, given, args)
        return c.call(args)

    def _staged(self, calls: ProgramCache, backend: str, args: tuple) -> Any:
        return staged(
            calls,
            backend,
            args,
            lambda: (callable_name(self), arg_names_of(self, len(args)), self.describe()),
            lambda fe, vals: self.__s2s_stage__(fe, vals, {}),
            origin=self,
        )

    def _call_static_ints(self, calls: ProgramCache, backend: str, given: tuple, args: tuple) -> Any:
        static = _static_ints(given, args)
        assert static is not None, "called only when the arguments hold Python ints"
        return self._staged(calls, backend, static).call(static)

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # pickling --------------------------------------------------------------
    # Attributes that hold compiled state (the programs compiled for this function), dropped
    # from a pickle: the unpickled function compiles again, or loads from the disk cache.
    _TRANSIENT = ("_s2s_calls",)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A pickle of the user function and the transform's options, never compiled code.

        A decorated function (``@s2s_ad.grad def f`` in an importable module, or a method of
        an importable class) is pickled by reference, as ``module.qualname``; any other is
        rebuilt from its state, which holds the user function (pickled by reference where it
        can be imported, by value by cloudpickle where it lives in ``__main__`` or a closure)
        and the options."""
        user = _user_function(self)
        ref = module_reference(self, getattr(user, "__module__", None), getattr(user, "__qualname__", None))
        if ref is not None:
            return (from_module, ref)
        # the class the function was made as, not a fast call's
        return _new, (type(self)._s2s_base or type(self),), self.__getstate__()

    def __getstate__(self) -> dict[str, Any]:
        # functions pickled by value travel with their source
        return state_with_sources({k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}, self.fn)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state_without_sources(state))


def _new(cls: type) -> Any:
    """An instance of ``cls`` with no state yet (the unpickler sets it)."""
    return object.__new__(cls)


def _fast_class(base: type, fast: Callable[..., Any]) -> type:
    """The subclass of ``base`` whose ``__call__`` is the fast call ``fast`` (made once per
    class and fast call, shared by the functions whose last program ``fast`` calls): Python
    finds a class's ``__call__`` with no descriptor and no bound method in between."""
    classes = fast.__dict__.setdefault("classes", {})
    cls = classes.get(base)
    if cls is None:
        names = {k: getattr(base, k) for k in ("__module__", "__qualname__", "__doc__")}
        cls = classes[base] = type(
            base.__name__, (base,), {**names, "__slots__": (), "__call__": fast, "_s2s_base": base, "_s2s_fast": fast}
        )
    return cls


def _user_function(fn: Any) -> Any:
    """The function under transforms (``grad(jit(f))`` → ``f``)."""
    while isinstance(fn, Transformed):
        fn = fn.fn
    return fn


class _StaticInt(int):
    """A Python int at a differentiated position that is kept a compile-time constant (its
    function uses it as a shape, axis or index); lowered as the plain int."""


_STATIC_INTS = object()  # a calls-cache entry: this signature's ints must stay constants


def _static_ints(given: tuple, args: tuple) -> tuple | None:
    """``args`` with the top-level Python ints of ``given`` that were made tensors put back
    as :class:`_StaticInt` constants; ``None`` when there are none."""
    out = tuple(_StaticInt(g) if type(g) is int and a is not g else a for g, a in zip(given, args))
    return out if any(type(a) is _StaticInt for a in out) else None


def _trace_numbers(fe: Tracer, fn: Any, args: list[Any], wrt: Any, implicit: bool) -> tuple[list[Any], Program]:
    """Trace ``fn`` with the Python numbers at positions ``wrt`` as inputs (inside compiled
    code). Where every input is differentiated (``implicit``), an int the function needs as
    a constant (a shape, an axis) is kept one, as :meth:`Transformed.__call__` does."""
    conv = [_number_atom(a) if i in wrt else a for i, a in enumerate(args)]
    try:
        return conv, trace_abstract(fn, conv)
    except S2SError:
        if not implicit or not any(type(a) is int for i, a in enumerate(args) if i in wrt):
            raise
    kept = [a if type(a) is int else c for a, c in zip(args, conv)]
    return kept, trace_abstract(fn, kept)  # an error here is the function's own


def _no_kwargs(fe: Tracer, who: str, kwargs: dict) -> None:
    if kwargs:
        raise fe.error(
            f"{who} takes positional arguments only, got keyword argument(s) {', '.join(kwargs)}", ArgumentError
        )


# ---------------------------------------------------------------------------- reverse mode


@dataclass(frozen=True)
class ReverseSpec:
    """What a reverse-mode API differentiates and how it shapes its result.

    ``layout`` is ``"flags"`` (GradOperation, ForwardValueAndGrad: by get_all/get_by_list),
    ``"position"`` (grad, value_and_grad: by grad_position/weights) or ``"vjp"`` (gradients of
    all inputs; a bare gradient for one input).
    """

    api: str
    layout: str
    positions: tuple[int, ...] | None = None  # "position" layout; None = no inputs
    bare_position: bool = False
    bare_weights: bool = False
    get_all: bool = False
    get_by_list: bool = False
    sens_param: bool = False
    has_aux: bool = False
    with_value: bool = False


class ReverseFunction(Transformed):
    """Reverse-mode derivative of a Cell or function (GradOperation, grad, value_and_grad,
    ForwardValueAndGrad, vjp)."""

    prefix = "grad"

    def __init__(self, fn: Any, spec: ReverseSpec, weights: tuple[Parameter, ...] | None = None):
        self.spec = spec
        self.weights = weights
        self.prefix = "vjp" if spec.layout == "vjp" else "grad"
        super().__init__(fn)

    def key(self) -> tuple:
        return ("reverse", self.spec, tuple(id(w) for w in self.weights) if self.weights else ())

    def describe(self) -> str:
        s = self.spec
        if s.layout == "flags":
            opts = f"get_all={s.get_all}, get_by_list={s.get_by_list}, sens_param={s.sens_param}"
        elif s.layout == "position":
            gp = s.positions[0] if (s.bare_position and s.positions) else s.positions
            opts = f"grad_position={gp}, has_aux={s.has_aux}, sens_param={s.sens_param}"
        else:
            return f"Reverse-mode derivative of {callable_name(self.fn)} ({s.api}: output, v·J)."
        return f"Reverse-mode derivative of {callable_name(self.fn)} ({s.api}({opts}))."

    def extra_args(self, n: int) -> list[str]:
        return ["sens"] if (self.spec.sens_param and n > 0) else []

    def number_positions(self, n: int) -> range | list[int] | tuple[int, ...]:
        s = self.spec
        n -= 1 if s.sens_param else 0
        if s.layout == "vjp" or (s.layout == "flags" and s.get_all):
            return range(max(n, 0))
        if s.layout == "flags":
            return () if s.get_by_list else (0,)
        return s.positions or ()

    def implicit_numbers(self) -> bool:
        s = self.spec
        return s.layout == "vjp" or (s.layout == "flags" and s.get_all)

    def _wrt(self, fe: Tracer, n: int) -> list[int]:
        s = self.spec
        if s.layout == "vjp" or (s.layout == "flags" and s.get_all):
            return list(range(n))
        if s.layout == "flags":
            # the first input's gradient; a function without inputs has none (an empty tuple, as in MindSpore)
            return [] if s.get_by_list or n == 0 else [0]
        for p in s.positions or ():
            if p >= n:
                raise fe.error(
                    f"{s.api}: grad_position {p} is out of range: {callable_name(self.fn)} was called with {n} input(s)",
                    ArgumentValueError,
                )
        return list(s.positions or ())

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        s = self.spec
        _no_kwargs(fe, self.__name__, kwargs)
        args = list(args)
        sens = None
        if s.sens_param:
            if not args:
                raise fe.error(
                    f"{s.api}(sens_param=True): the last argument must be the sens (output cotangent), "
                    "but no arguments were given",
                    ArgumentError,
                )
            sens = args.pop()
        try:
            wrt = self._wrt(fe, len(args))
            args, inner = _trace_numbers(fe, self.fn, args, wrt, self.implicit_numbers())
        except ArgumentError as err:
            if not s.sens_param:
                raise
            how, what = ("in vjp(fn, inputs, v)", "v") if s.layout == "vjp" else ("with sens_param=True", "the sens")
            raise type(err)(
                f"{err.bare_message} ({how} the last argument is {what}, so {callable_name(self.fn)} "
                f"received the {len(args)} argument(s) before it; was {what} forgotten?)",
                err.loc,
            ) from None
        if s.has_aux and (
            inner.out_tree is None or inner.out_tree[0] not in ("tuple", "list") or len(inner.out_tree[1]) < 2
        ):
            raise fe.error(
                f"{s.api}(has_aux=True): {callable_name(self.fn)} must return a tuple of at least two outputs "
                f"(the one to differentiate, then auxiliary outputs), got {tree_str(inner.out_tree)}",
                ArgumentError,
            )
        weights = list(self.weights) if self.weights else []
        explicit = not (s.layout == "vjp" or (s.layout == "flags" and s.get_all))
        diff = differentiated_program(fe, s.api, self.fn, args, inner, wrt, weights, explicit, updates_ok=True)
        gp = optimize(
            grad_program(
                diff, wrt, _weight_leaves(diff, weights), s.sens_param, with_value=diff is inner, has_aux=s.has_aux
            ),
            final=False,
        )
        flat = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        n_args = len(flat)
        if sens is not None:
            diff_tree = diff.out_tree[1][0] if s.has_aux else diff.out_tree
            n_diff = treedef_leaves(diff_tree)
            flat.extend(
                check_like(
                    fe,
                    "v" if s.layout == "vjp" else "sens",
                    f"the output of {callable_name(self.fn)}",
                    sens,
                    diff_tree,
                    [o.aval for o in diff.outs[:n_diff]],
                )
            )
        outs = inline_program(fe, gp, flat)
        if diff is not inner:
            # The value is the function's own (integer arithmetic stays integer); the
            # gradients of integer inputs were computed in float and are cast once, here.
            value_atoms = inline_program(fe, inner, flat[:n_args])
            n_grads = len(outs)
            outs = value_atoms + outs
            leaf_avals = [av for pos in wrt for av in _leaf_avals(inner, pos)]
            nv = len(value_atoms)
            outs[nv : nv + len(leaf_avals)] = _cast_leaves(fe, outs[nv : nv + len(leaf_avals)], leaf_avals)
            assert n_grads == len(leaf_avals) + len(weights)
            tree = ("tuple", (inner.out_tree, *gp.out_tree[1][1:]))
        else:
            tree = gp.out_tree
        value, arg_grads, param_grads = unflatten(tree, outs)
        return self._shape(value, list(arg_grads), list(param_grads))

    def _shape(self, value: Any, arg_grads: list, param_grads: list) -> Any:
        s = self.spec
        if s.layout == "flags":
            if s.get_all and s.get_by_list:
                grads: Any = (tuple(arg_grads), tuple(param_grads))
            elif s.get_by_list:
                grads = tuple(param_grads)
            elif s.get_all:
                grads = tuple(arg_grads)
            else:
                grads = arg_grads[0] if arg_grads else ()
        elif s.layout == "vjp":
            grads = arg_grads[0] if len(arg_grads) == 1 else tuple(arg_grads)
        else:
            by_pos = arg_grads[0] if s.bare_position else tuple(arg_grads)
            by_w = param_grads[0] if s.bare_weights else tuple(param_grads)
            if s.positions is not None and self.weights is not None:
                grads = (by_pos, by_w)
            elif self.weights is not None:
                grads = by_w
            else:
                grads = by_pos
        if s.with_value:
            return (value, grads)
        if s.has_aux:
            return (grads, tuple(value[1:]))
        return grads


class GradOperation:
    """``GradOperation(get_all=False, get_by_list=False, sens_param=False)``.

    ``GradOperation(...)(net, weights=None)`` returns a function computing, per the flags:
    the gradient of the first input (default); a tuple over all inputs (``get_all``); a tuple
    over ``weights`` (``get_by_list``); both as ``((inputs...), (weights...))``. With
    ``sens_param`` the last argument is the output cotangent (a tuple for a multi-output net);
    without it every output is seeded with ones.
    """

    def __init__(self, get_all: bool = False, get_by_list: bool = False, sens_param: bool = False):
        _check_bool("GradOperation", get_all=get_all, get_by_list=get_by_list, sens_param=sens_param)
        self.get_all = get_all
        self.get_by_list = get_by_list
        self.sens_param = sens_param

    def __call__(
        self, fn: Callable[..., Any], weights: Parameter | ParameterTuple | Sequence[Parameter] | None = None
    ) -> ReverseFunction:
        _check_callable("GradOperation", fn)
        return flags_function(fn, weights, self.get_all, self.get_by_list, self.sens_param, "GradOperation")

    def __repr__(self) -> str:
        return f"GradOperation(get_all={self.get_all}, get_by_list={self.get_by_list}, sens_param={self.sens_param})"


def flags_function(
    fn: Any, weights: Any, get_all: bool, get_by_list: bool, sens_param: bool, api: str, with_value: bool = False
) -> ReverseFunction:
    """The reverse-mode function of GradOperation's flags (also ForwardValueAndGrad's)."""
    # As in MindSpore, GradOperation(get_by_list=True) with no weights (None or an empty tuple)
    # differentiates no weight: the weights' part of the result is an empty tuple.
    empty = weights is None or (isinstance(weights, (ParameterTuple, list, tuple)) and not weights)
    if get_by_list and empty and api != "GradOperation":
        raise ArgumentError(f"{api}(get_by_list=True) needs weights, e.g. ParameterTuple(net.trainable_params())")
    w = () if empty else normalize_weights(weights, api)
    spec = ReverseSpec(
        api, "flags", get_all=get_all, get_by_list=get_by_list, sens_param=sens_param, with_value=with_value
    )
    return ReverseFunction(fn, spec, w if get_by_list else None)


def _position_function(
    fn: Any,
    grad_position: Any,
    weights: Any,
    has_aux: bool,
    sens_param: bool,
    with_value: bool,
    api: str,
    target: str | None = None,
) -> ReverseFunction:
    _check_callable(api, fn)
    target = check_target(api, target)
    _check_bool(api, has_aux=has_aux, sens_param=sens_param)
    positions = _check_positions(api, grad_position)
    w = normalize_weights(weights, api)
    if positions is None and w is None:
        raise ArgumentValueError(f"{api}: grad_position and weights cannot both be None")
    spec = ReverseSpec(
        api,
        "position",
        positions=positions,
        bare_position=positions is not None and len(positions) == 1,
        bare_weights=isinstance(weights, Parameter),
        sens_param=sens_param,
        has_aux=has_aux,
        with_value=with_value,
    )
    rf = ReverseFunction(fn, spec, w)
    rf.target = target
    return rf


Weights = Parameter | ParameterTuple | Sequence[Parameter] | None
"""What ``weights=`` takes: one Parameter, a ParameterTuple or a sequence of Parameters."""


@overload
def grad(
    fn: Callable[..., Any],
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    sens_param: bool = False,
    *,
    target: str | None = None,
) -> ReverseFunction: ...
@overload
def grad(
    fn: None = None,
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    sens_param: bool = False,
    *,
    target: str | None = None,
) -> Callable[[Callable[..., Any]], ReverseFunction]: ...
def grad(
    fn: Callable[..., Any] | None = None,
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    sens_param: bool = False,
    *,
    target: str | None = None,
) -> ReverseFunction | Callable[[Callable[..., Any]], ReverseFunction]:
    """``grad(fn, grad_position=0, weights=None, has_aux=False, sens_param=False, *,
    target=None)``: the gradient function of ``fn``.

    It returns the gradient of the input at ``grad_position`` (an int gives a bare Tensor, a
    tuple a tuple, a one-element tuple a bare Tensor); with ``weights`` also the weights'
    gradients, as ``(input grads, weight grads)``, or only those when ``grad_position`` is
    None. With ``has_aux`` only ``fn``'s first output is differentiated and the result is
    ``(grads, (aux, ...))``. With ``sens_param`` the last argument is the output cotangent.
    Used bare (``@grad``) or with arguments (``@grad(grad_position=(0, 1))``) it is a decorator.
    ``target`` (``"cpu"`` or ``"cuda"``) runs the compiled gradient there, whatever the context's
    ``device_target``.
    """
    if fn is None:
        return lambda f: grad(f, grad_position, weights, has_aux, sens_param, target=target)
    return _position_function(fn, grad_position, weights, has_aux, sens_param, False, "grad", target)


@overload
def value_and_grad(
    fn: Callable[..., Any],
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    *,
    target: str | None = None,
) -> ReverseFunction: ...
@overload
def value_and_grad(
    fn: None = None,
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    *,
    target: str | None = None,
) -> Callable[[Callable[..., Any]], ReverseFunction]: ...
def value_and_grad(
    fn: Callable[..., Any] | None = None,
    grad_position: int | tuple[int, ...] | None = 0,
    weights: Weights = None,
    has_aux: bool = False,
    *,
    target: str | None = None,
) -> ReverseFunction | Callable[[Callable[..., Any]], ReverseFunction]:
    """``value_and_grad(fn, grad_position=0, weights=None, has_aux=False, *, target=None)``: a
    function returning ``(fn's output, gradients)``, the gradients structured as :func:`grad`'s.
    With ``has_aux`` the whole output is returned and only its first element is differentiated.
    ``target`` as in :func:`grad`. Usable as a decorator, bare or with arguments."""
    if fn is None:
        return lambda f: value_and_grad(f, grad_position, weights, has_aux, target=target)
    return _position_function(fn, grad_position, weights, has_aux, False, True, "value_and_grad", target)


def _as_inputs(inputs: Any) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


_MISSING = object()


class _Direct:
    """A function called as ``api(fn, inputs, v)`` (jvp, vjp) that also lowers inside
    compiled code."""

    def __init__(self, make: Callable[[Any], Transformed], name: str, doc: str, module: str = __name__):
        self.make = make
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc
        self.__module__ = module  # where it is defined: pickled by reference, as ``module.name``

    def __reduce__(self) -> Any:
        ref = module_reference(self, self.__module__, self.__qualname__)
        if ref is None:
            raise TypeError(f"cannot pickle {self!r}: it is not {self.__module__}.{self.__qualname__}")
        return (from_module, ref)

    @overload
    def __call__(
        self, fn: Callable[..., Any], inputs: Any = ..., v: Any = ..., *, has_aux: Literal[False] = False
    ) -> tuple[Any, Any]: ...
    @overload
    def __call__(
        self, fn: Callable[..., Any], inputs: Any = ..., v: Any = ..., *, has_aux: Literal[True]
    ) -> tuple[Any, Any, Any]: ...
    def __call__(
        self, fn: Callable[..., Any], inputs: Any = _MISSING, v: Any = _MISSING, *, has_aux: bool = False
    ) -> tuple[Any, ...]:
        _check_callable(self.__name__, fn)
        _check_bool(self.__name__, has_aux=has_aux)
        if has_aux and self.__name__ == "vjp":
            # MindSpore's form with auxiliary outputs: vjp(fn, *inputs, has_aux=True)
            return _vjp_with_aux(fn, tuple(a for a in (inputs, v) if a is not _MISSING))
        if inputs is _MISSING or v is _MISSING:
            raise ArgumentError(
                f"{self.__name__}(fn, inputs, v) takes the inputs and the vector v in one call "
                f"(MindSpore r1.6 form) and returns (fn(*inputs), result); "
                f"{self.__name__}({callable_name(fn)}{'' if inputs is _MISSING else ', inputs'}) is missing "
                f"{'inputs and v' if inputs is _MISSING else 'v'}"
            )
        if has_aux:
            return AuxFunction(self.make(_FirstOutput(fn, self.__name__)), fn)(*_as_inputs(inputs), v)
        return self.make(fn)(*_as_inputs(inputs), v)

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        try:
            bound = inspect.signature(self.__call__).bind(*args, **kwargs)
        except TypeError as err:
            raise fe.error(f"{self.__name__}(fn, inputs, v): {err}", ArgumentError) from None
        has_aux = bound.arguments.get("has_aux", False)
        if has_aux and self.__name__ == "vjp":
            raise fe.error(
                "vjp(fn, *inputs, has_aux=True) returns a function, which compiled code cannot return; call it "
                "outside compiled code, or use vjp(fn, inputs, v) or grad(fn, has_aux=True) inside",
                NotSupportedError,
            )
        if len(bound.args) < 3:
            raise fe.error(f"{self.__name__}(fn, inputs, v): the inputs and v are both required", ArgumentError)
        fn, inputs, v = bound.args
        _check_callable(self.__name__, fn)
        if has_aux:
            return AuxFunction(self.make(_FirstOutput(fn, self.__name__)), fn).__s2s_stage__(
                fe, [*_as_inputs(inputs), v], {}
            )
        return self.make(fn).__s2s_stage__(fe, [*_as_inputs(inputs), v], {})

    def __repr__(self) -> str:
        return f"<s2s_ad.{self.__name__}>"


class _FirstOutput:
    """``fn``'s first output (the differentiated one, with ``has_aux``); ``fn`` must return a
    tuple of at least two outputs."""

    def __init__(self, fn: Any, api: str):
        self.fn = fn
        self.api = api
        self.__name__ = callable_name(fn)

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        out = fe.call(self.fn, args, kwargs)
        if not isinstance(out, tuple) or len(out) < 2:
            raise fe.error(
                f"{self.api}(has_aux=True): {callable_name(self.fn)} must return a tuple of at least two outputs "
                "(the one to differentiate, then auxiliary outputs)",
                ArgumentError,
            )
        return out[0]


register_static(_FirstOutput)


def _first_output(fn: Any, api: str) -> _FirstOutput:
    """The :class:`_FirstOutput` of ``fn``, one per function (kept in its compile cache), so that
    its programs are compiled once."""
    return cache_for(fn).setdefault(("first_output", api), _FirstOutput(fn, api))


def _aux_of(out: tuple) -> Any:
    """The auxiliary outputs as MindSpore returns them: the second output, or a tuple of all after the first."""
    return out[1] if len(out) == 2 else tuple(out[1:])


class AuxFunction(Transformed):
    """``jvp``/``vjp`` with ``has_aux``: ``inner`` (the transform of ``fn``'s first output) called
    with ``(*inputs, v)`` gives ``(value, derivative)``; the result is ``(value, derivative,
    aux)``, the auxiliary outputs computed in the same program."""

    prefix = "aux"

    def __init__(self, inner: Transformed, fn: Any):
        self.inner = inner
        super().__init__(fn)

    def key(self) -> tuple:
        return ("aux", type(self.inner).__name__, self.inner.key())

    def describe(self) -> str:
        return f"{self.inner.describe()[:-1]}, with auxiliary outputs."

    def extra_args(self, n: int) -> list[str]:
        return self.inner.extra_args(n)

    def number_positions(self, n: int) -> range | list[int] | tuple[int, ...]:
        return self.inner.number_positions(n)

    def implicit_numbers(self) -> bool:
        return self.inner.implicit_numbers()

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        value, derivative = self.inner.__s2s_stage__(fe, args, kwargs)
        out = fe.call(self.fn, list(args[:-1]))
        return value, derivative, _aux_of(out)


def _vjp_with_aux(fn: Any, inputs: tuple) -> tuple[Any, Any, Any]:
    """``vjp(fn, *inputs, has_aux=True) -> (first output, vjp_fn, aux)`` as in MindSpore:
    ``vjp_fn(v)`` gives the tuple of the inputs' gradients of the first output for the cotangent ``v``."""
    out = jit(fn)(*inputs)
    if not isinstance(out, tuple) or len(out) < 2:
        raise ArgumentError(
            f"vjp(has_aux=True): {callable_name(fn)} must return a tuple of at least two outputs "
            "(the one to differentiate, then auxiliary outputs)"
        )
    grads = flags_function(_first_output(fn, "vjp"), None, True, False, True, "vjp")

    def vjp_fn(*v: Any) -> Any:
        return grads(*inputs, v[0] if len(v) == 1 else v)

    return out[0], vjp_fn, _aux_of(out)


def vjp_function(fn: Any, api: str = "vjp") -> ReverseFunction:
    return ReverseFunction(fn, ReverseSpec(api, "vjp", sens_param=True, with_value=True))


vjp = _Direct(
    vjp_function,
    "vjp",
    """``vjp(fn, inputs, v) -> (fn(*inputs), v·J)``: reverse mode (MindSpore r1.6 form).

    ``inputs`` is a Tensor or a tuple of Tensors, ``v`` is structured like ``fn``'s output.
    The gradients are a bare Tensor for one input, else a tuple with one per input.""",
)


# ---------------------------------------------------------------------------- forward mode


class JvpFunction(Transformed):
    """Forward-mode derivative: called with ``(*inputs, v)``, returns ``(out, J·v)``."""

    prefix = "jvp"

    def __init__(self, fn: Any, api: str = "jvp"):
        self.api = api
        super().__init__(fn)

    def key(self) -> tuple:
        return ("jvp",)

    def describe(self) -> str:
        return f"Forward-mode derivative of {callable_name(self.fn)} ({self.api}: output, J·v)."

    def extra_args(self, n: int) -> list[str]:
        return ["v"] if n > 0 else []

    def number_positions(self, n: int) -> range:
        return range(max(n - 1, 0))

    def implicit_numbers(self) -> bool:
        return True

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        _no_kwargs(fe, self.__name__, kwargs)
        if not args:
            raise fe.error(
                f"{self.api}: the last argument must be the tangent v, but no arguments were given", ArgumentError
            )
        args = list(args)
        v = args.pop()
        if not args:
            raise fe.error(
                f"{self.api}: {callable_name(self.fn)} needs at least one input to differentiate", ArgumentError
            )
        args, inner = _trace_numbers(fe, self.fn, args, range(len(args)), True)
        positions = list(range(len(args)))
        diff = differentiated_program(fe, self.api, self.fn, args, inner, positions, [], False, updates_ok=True)
        jp = optimize(jvp_args_program(diff, positions), final=False)
        flat = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        n_in = len(flat)
        if len(args) == 1 and not isinstance(v, (tuple, list)):
            v = (v,)
        # A bare tangent for several inputs is left bare, so check_like reports the mismatch.
        v = tuple(v) if isinstance(v, (tuple, list)) else v
        in_tree = ("tuple", inner.in_tree[1])
        # Tangents pair with the differentiated program's inputs: float for integer inputs.
        avals = [x.aval for x in diff.arg_vars[:n_in]]
        flat.extend(check_like(fe, "the tangent v", "the inputs", v, in_tree, avals, "its input"))
        outs = inline_program(fe, jp, flat)
        if diff is not inner:
            # The value is the function's own; tangents computed in float are cast once to
            # the output's dtype.
            n_out = inner.n_results
            outs = inline_program(fe, inner, flat[:n_in]) + _cast_leaves(fe, outs[n_out:], [o.aval for o in inner.outs])
        value, tangent = unflatten(("tuple", (inner.out_tree, inner.out_tree)), outs)
        return (value, tangent)


jvp = _Direct(
    lambda fn: JvpFunction(fn, "jvp"),
    "jvp",
    """``jvp(fn, inputs, v) -> (fn(*inputs), J·v)``: forward mode.

    ``inputs`` is a Tensor or a tuple of Tensors; ``v`` is one tangent per input (a Tensor for
    one input, else a tuple). The tangent output is structured like ``fn``'s output.""",
)


# ---------------------------------------------------------------------------- jit


class JitFunction(Transformed):
    """``@s2s_ad.jit``: ``fn`` compiled once per argument signature."""

    prefix = "jit"

    def key(self) -> tuple:
        return ("jit",)

    def describe(self) -> str:
        return f"{callable_name(self.fn)}, compiled."

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if not kwargs:
            return super()._call(args, kwargs)
        args, kw = _bind_positional(self.fn, args, kwargs)
        if not kw:
            return super()._call(args, {})
        # Keyword-only arguments (and **kwargs) cannot be passed positionally: they travel
        # after the positional ones, their names part of the cache key.
        names, n, vals = tuple(kw), len(args), [*args, *kw.values()]
        return staged(
            calls_cache(self.fn, (*self.key(), names)),
            context.backend(self.target),
            vals,
            lambda: (callable_name(self), arg_names_of(self.fn, n) + list(names), self.describe()),
            lambda fe, vals: fe.call(self.fn, vals[:n], dict(zip(names, vals[n:]))),
            origin=(self, names),
        ).call(vals)

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        return fe.call(self.fn, list(args), kwargs)

    @property
    def __s2s_function__(self) -> Any:
        """Inside compiled code ``@jit`` changes nothing: its function stands in its place."""
        return self.fn

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """``@jit`` on a method (``@jit def construct(self, x)``) binds like the function."""
        return self if obj is None else types.MethodType(self, obj)


def _bind_positional(fn: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``(positional args, keyword-only args)`` of a call to ``fn`` (a Cell: its construct),
    defaults applied."""
    try:
        bound = inspect.signature(_runs(fn)).bind(*args, **kwargs)
    except TypeError as err:
        raise ArgumentError(f"{callable_name(fn)}(): {err}") from None
    bound.apply_defaults()
    return bound.args, bound.kwargs


@overload
def jit(fn: Callable[..., Any], *, target: str | None = None) -> JitFunction: ...
@overload
def jit(fn: None = None, *, target: str | None = None) -> Callable[[Callable[..., Any]], JitFunction]: ...
def jit(
    fn: Callable[..., Any] | None = None, *, target: str | None = None
) -> JitFunction | Callable[[Callable[..., Any]], JitFunction]:
    """Compile ``fn`` (a function or Cell) for fast repeated calls: ``@s2s_ad.jit``. The first
    call with a new argument signature (shapes, dtypes, static values) compiles; later calls
    run the compiled code directly. ``@s2s_ad.jit(target="cuda")`` (or ``"cpu"``) runs it there,
    whatever the context's ``device_target``."""
    if fn is None:
        return lambda f: jit(f, target=target)
    _check_callable("jit", fn)
    target = check_target("jit", target)
    jf = JitFunction(fn)
    if inspect.isfunction(fn):
        functools.update_wrapper(jf, fn)
    jf.target = target
    return jf


# ---------------------------------------------------------------------------- introspection

__all__ = [
    "GradOperation",
    "ReverseFunction",
    "JvpFunction",
    "JitFunction",
    "grad",
    "value_and_grad",
    "jvp",
    "vjp",
    "jit",
    "generated_source",
    "trace_program",
    "output_avals",
]


def _staged_body(fn: Any):
    if isinstance(fn, Transformed):
        return lambda fe, vals: fn.__s2s_stage__(fe, vals, {})
    return lambda fe, vals: fe.call(fn, vals)


def _abstract_args(args: tuple) -> list[Any]:
    def conv(a: Any) -> Any:
        if isinstance(a, Aval):
            return a
        if isinstance(a, (tuple, list)):
            return type(a)(conv(x) for x in a)
        if isinstance(a, dict):
            return {k: conv(x) for k, x in a.items()}
        return abstractify(a)

    return [conv(a) for a in args]


def _shown(fn: Any) -> Any:
    """The nn wrappers (ForwardValueAndGrad, Jvp, Vjp) are shown as the transformed function
    their calls go to, as when they are called."""
    inner = fn.__dict__.get("_fn") if hasattr(fn, "__dict__") else None
    return inner if isinstance(inner, Transformed) else fn


def _trace_for_show(fn: Any, args: tuple) -> Program:
    fn = _shown(fn)
    return trace(_staged_body(fn), _abstract_args(args), callable_name(fn), arg_names_of(fn, len(args)))


def trace_program(fn: Any, *args: Any, optimized: bool = True) -> Program:
    """The optimised IR program s2s_ad compiles for ``fn(*args)`` (as traced, before the
    optimiser, with ``optimized=False``). Arguments may be Tensors, arrays or
    :class:`~s2s_ad.ir.Aval` shape/dtype specs."""
    prog = _trace_for_show(fn, args)
    return Compiled(prog, "python").program if optimized else prog


def generated_source(fn: Any, *args: Any, target: str = "numpy", standalone: bool = False) -> str:
    """The Python source s2s_ad generates for ``fn(*args)`` (a Cell, function or transformed
    function). Arguments may be Tensors, arrays or :class:`~s2s_ad.ir.Aval` specs. ``target``:
    ``"numpy"`` (the source PYNATIVE_MODE runs), ``"numba"`` (with fused loops: the source
    GRAPH_MODE compiles) or ``"cuda"`` (the CUDA kernels and host code, always a module).
    With ``standalone``, the numpy and Numba sources come as a module that runs on its own:
    its imports included, and the Numba one compiled with ``numba.njit`` on import."""
    if target not in ("numpy", "numba", "cuda"):
        raise ArgumentValueError(f"generated_source: target must be 'numpy', 'numba' or 'cuda', got {target!r}")
    fn = _shown(fn)
    doc = fn.describe() if isinstance(fn, Transformed) else f"{callable_name(fn)}, compiled."
    prog = optimize(_trace_for_show(fn, args))  # the source only: nothing is compiled
    fname = identifier(prog.name)
    if target == "cuda":
        # imported for CUDA source only (importing the printer adds 5% to `import s2s_ad`)
        from .cuda import generate as cuda_source

        return cuda_source(prog, fname, doc)
    src = generate(prog, fname, doc, fuse=target == "numba")
    return standalone_source(src, fname, target) if standalone else src


def output_avals(fn: Any, *args: Any) -> Any:
    """Shapes and dtypes of ``fn(*args)``'s output, as Avals in the output's structure."""
    prog = _trace_for_show(fn, args)
    return unflatten(prog.out_tree, [o.aval for o in prog.outs])


# Inside compiled code these build transformed functions from compile-time values (the
# function or Cell to differentiate and the options): they are called while compiling.
for _f in (grad, value_and_grad, jit):
    register_static(_f)
register_constructor(GradOperation)
register_static(GradOperation)

# MindSpore spells the differentiation API ``ops.GradOperation``, ``ops.grad``, ...: it is
# installed in the ops package, which this module builds on (so ops cannot import it).
for _name in ("GradOperation", "grad", "value_and_grad", "jvp", "vjp"):
    setattr(ops, _name, globals()[_name])


# ---------------------------------------------------------------------------- vmap


class VmapFunction(Transformed):
    """``vmap(fn, in_axes, out_axes)``: ``fn`` mapped over a batch axis of its inputs.

    ``fn`` is traced on one example (the inputs with their batch axes removed) and the traced
    program is batched by :mod:`s2s_ad.batching`; inside compiled code (under ``jit``,
    ``grad``, another ``vmap``) the batched program is inlined like any other transform."""

    prefix = "vmap"

    def __init__(self, fn: Any, in_axes: Any = 0, out_axes: Any = 0, api: str = "vmap"):
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.api = api
        super().__init__(fn)

    def key(self) -> tuple:
        return ("vmap", _axes_key(self.in_axes), _axes_key(self.out_axes))

    def describe(self) -> str:
        return (
            f"{callable_name(self.fn)} mapped over a batch ({self.api}(in_axes={self.in_axes!r}, "
            f"out_axes={self.out_axes!r}))."
        )

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        # imported here: the batching transform is used only by vmap (it is a peer of the AD
        # modes in the layer below, imported on first use to keep `import s2s_ad` lean)
        from .batching import batch_eqns

        _no_kwargs(fe, self.__name__, kwargs)
        api, name = self.api, callable_name(self.fn)
        in_axes = self.in_axes
        if isinstance(in_axes, list):  # a list at the top: one entry per positional argument, as a tuple
            in_axes = tuple(in_axes)
        if isinstance(in_axes, tuple):
            if len(in_axes) != len(args):
                raise fe.error(
                    f"{api}: in_axes {self.in_axes!r} has {len(in_axes)} entr{'y' if len(in_axes) == 1 else 'ies'} "
                    f"but {name} was called with {len(args)} positional argument(s)",
                    ArgumentValueError,
                )
            per_arg = list(in_axes)
        else:
            per_arg = [in_axes] * len(args)
        leaf_axes: list[int | None] = []
        per_example: list[Any] = []
        sizes: list[tuple[str, int]] = []
        arg_names = arg_names_of(self.fn, len(args))
        for k, (a, ax) in enumerate(zip(args, per_arg)):
            leaves, tree = flatten(a)
            axes = _axes_for(fe, api, ax, tree, f"argument {arg_names[k]}")
            ex_leaves = []
            for j, (leaf, d) in enumerate(zip(leaves, axes)):
                what = arg_names[k] + (f" (leaf {j})" if tree is not None else "")
                tensor = isinstance(leaf, (Var, Lit)) or is_tensor_value(leaf)
                if not tensor:
                    if d is not None:
                        raise fe.error(
                            f"{api}: {what} is {_a(type(leaf).__name__)}, not a tensor, so it cannot be mapped over; "
                            "give it in_axes None",
                            ArgumentValueError,
                        )
                    ex_leaves.append(leaf)
                    continue
                av = fe.atom(leaf).aval if not isinstance(leaf, (Var, Lit)) else leaf.aval
                if d is None:
                    leaf_axes.append(None)
                    ex_leaves.append(av)
                    continue
                if not -len(av.shape) <= d < len(av.shape):
                    raise fe.error(
                        f"{api}: in_axes {d} is out of range for {what} of shape {fmt_shape(av.shape)} "
                        f"(rank {len(av.shape)})",
                        ArgumentValueError,
                    )
                d %= len(av.shape)
                leaf_axes.append(d)
                sizes.append((what, av.shape[d]))
                ex_leaves.append(Aval(av.shape[:d] + av.shape[d + 1 :], av.dtype))
            per_example.append(unflatten(tree, ex_leaves))
        if not sizes:
            raise fe.error(
                f"{api}: no input of {name} is mapped over (every in_axes is None, or the inputs hold no tensor): "
                "there is no batch size",
                ArgumentValueError,
            )
        if len({n for _, n in sizes}) > 1:
            listing = ", ".join(f"{w} has size {n}" for w, n in sizes)
            raise fe.error(f"{api}: the mapped axes of {name}'s inputs differ in size: {listing}", ArgumentValueError)
        size = sizes[0][1]
        prog = trace_abstract(self.fn, per_example)
        flat = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        assert len(flat) == prog.n_args == len(leaf_axes), (len(flat), prog.n_args, len(leaf_axes))
        atoms = [fe.cast(a, v.dtype) for a, v in zip(flat, prog.arg_vars)]
        atoms += [fe.cast(fe.atom(p), v.dtype) for v, p in zip(prog.param_vars, prog.parameters)]
        atoms += [fe.atom(c) for c in prog.consts]
        if prog.updates:
            raise fe.error(f"{api}: {name} assigns Parameters (ops.assign), which cannot be mapped", NotSupportedError)
        dims = [*leaf_axes, *([None] * (len(prog.invars) - prog.n_args))]
        outs, out_dims = batch_eqns(fe.builder, prog, atoms, dims, size)
        out_axes = _axes_for(fe, api, self.out_axes, prog.out_tree, f"the output of {name}", out=True)
        res = []
        for j, (o, d, want) in enumerate(zip(outs, out_dims, out_axes)):
            if want is None:
                if d is not None:
                    raise fe.error(
                        f"{api}: out_axes is None for output {j} of {name}, but that output varies over the batch",
                        ArgumentValueError,
                    )
                res.append(o)
                continue
            rank = len(o.shape) + (1 if d is None else 0)
            if not -rank <= want < rank:
                raise fe.error(
                    f"{api}: out_axes {want} is out of range for output {j} of {name}, of batched rank {rank}",
                    ArgumentValueError,
                )
            res.append(to_batch_dim(fe.builder, o, d, want % rank, size))
        return unflatten(prog.out_tree, res)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _axes_key(axes: Any) -> Any:
    if isinstance(axes, dict):
        return ("dict", tuple((k, _axes_key(axes[k])) for k in sorted(axes, key=repr)))
    if isinstance(axes, (tuple, list)):
        return (type(axes).__name__, tuple(_axes_key(a) for a in axes))
    return axes


def _axes_for(fe: Tracer, api: str, axes: Any, tree: Any, what: str, out: bool = False) -> list[int | None]:
    """The batch axis of each leaf of ``tree`` from ``axes``, a prefix of it (an int or None
    applies to a whole subtree; tuples, lists and dicts must match the structure)."""
    which = "out_axes" if out else "in_axes"
    if axes is None or (isinstance(axes, int) and not isinstance(axes, bool)):
        return [axes] * treedef_leaves(tree)
    if isinstance(axes, (tuple, list, dict)):
        if tree is None or tree == _CONSTANT:
            raise fe.error(
                f"{api}: {which} {axes!r} is a {type(axes).__name__} but {what} is a single tensor", ArgumentValueError
            )
        kind, children = tree[0], tree[1]
        if isinstance(axes, dict):
            if kind != "dict" or set(axes) != set(tree[2]):
                raise fe.error(
                    f"{api}: {which} {axes!r} does not match the structure of {what}: {tree_str(tree)}",
                    ArgumentValueError,
                )
            parts = [axes[k] for k in tree[2]]
        else:
            if kind == "dict" or len(axes) != len(children):
                raise fe.error(
                    f"{api}: {which} {axes!r} does not match the structure of {what}: {tree_str(tree)}",
                    ArgumentValueError,
                )
            parts = list(axes)
        res: list[int | None] = []
        for sub, child in zip(parts, children):
            res.extend(_axes_for(fe, api, sub, child, what, out))
        return res
    raise fe.error(
        f"{api}: {which} must be an int, None, or a tuple/list/dict of them, got {axes!r}", ArgumentValueError
    )


def _check_mapped(api: str, fn: Any) -> None:
    if isinstance(fn, _Closure):
        _check_callable(api, fn)
    if not callable(fn):
        raise ArgumentError(f"{api}: expected a Cell or a function to map over a batch, got {type(fn).__name__}")


def _check_axes(api: str, axes: Any, which: str) -> None:
    if axes is None or (isinstance(axes, int) and not isinstance(axes, bool)):
        return
    if isinstance(axes, (tuple, list)):
        for a in axes:
            _check_axes(api, a, which)
        return
    if isinstance(axes, dict):
        for a in axes.values():
            _check_axes(api, a, which)
        return
    raise ArgumentValueError(f"{api}: {which} must be an int, None, or a tuple/list/dict of them, got {axes!r}")


def vmap(fn: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0) -> VmapFunction:
    """``vmap(fn, in_axes=0, out_axes=0)``: ``fn`` mapped over an axis of its inputs (JAX's
    semantics). ``in_axes`` is an int (every input's batch axis), None (shared by the batch),
    or a tuple with one entry per positional argument, each an int, None, or a tuple/list/dict
    matching that argument's structure. ``out_axes`` places the batch axis of the outputs in
    the same way (None: an output that must not vary over the batch). Negative axes count from
    the end. Compose it freely with ``grad``, ``jvp``, ``jit`` and ``vmap`` itself."""
    _check_mapped("vmap", fn)
    _check_axes("vmap", in_axes, "in_axes")
    _check_axes("vmap", out_axes, "out_axes")
    return VmapFunction(fn, in_axes, out_axes)


def ops_vmap(fn: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0) -> VmapFunction:
    """``ops.vmap(fn, in_axes=0, out_axes=0)``: MindSpore's vectorising map. ``in_axes`` is
    an int or None for every input, or a tuple/list with one entry per positional input (nested
    like the input); ``out_axes`` likewise for the outputs. Same batching as :func:`vmap`."""
    _check_mapped("ops.vmap", fn)
    _check_axes("ops.vmap", in_axes, "in_axes")
    _check_axes("ops.vmap", out_axes, "out_axes")
    return VmapFunction(fn, in_axes, out_axes, "ops.vmap")


register_static(vmap)
register_static(ops_vmap)
ops.vmap = ops_vmap
__all__ += ["vmap", "VmapFunction"]
