"""The trace layer: Python source and staged calls → typed IR programs.

* :class:`~s2s_ad.trace.tracer.Tracer` is the staging API: it holds the program being built
  and turns values into atoms (``atom``, ``atoms``, ``lit``), emits operations (``bind`` with
  conversion, ``bind1`` on atoms as they are, ``elementwise`` with MindSpore's promotion,
  ``cast``, ``fill``, ``subscript``, ``tensor_of``), reports errors at the current source
  position (``loc``, ``error``) and stages nested calls (``call``, ``inline``).
* :class:`~s2s_ad.trace.interpreter.Interpreter` evaluates a function's syntax tree on traced
  values, one handler per node class (``exec_If``, ``eval_BinOp``, ...), and owns a Tracer.
  :func:`~s2s_ad.trace.interpreter.trace` is the entry point: a program from a staged body
  and abstract arguments.
* :mod:`~s2s_ad.trace.lowering` stages the structural operations (cast, reshape, transpose,
  reductions, select, comparisons, one-hot, tensor methods); :mod:`~s2s_ad.trace.numpy_map`
  maps NumPy functions onto the op table.

The staging protocol (:mod:`~s2s_ad.trace.protocol`). This layer knows IR atoms, NumPy
arrays and Python values only; the layers above register how their objects take part, when
they are imported.

Values. A registered leaf type (``register_leaf(cls, Leaf(array, parameter, name))``: Tensor,
Parameter) is a tensor value: a parameter leaf becomes an input of the program (one per
object), any other leaf (and a NumPy array) a constant. Python numbers are literals typed
after the tensors they meet. A static object (``register_static(cls_or_obj)``: Cells,
primitives, ``GradOperation``) is a compile-time value whose attributes compiled code may read.

Calls. ``Interpreter.call(f, args, kwargs)`` stages ``f`` by the first rule that applies:

1. ``type(f).__s2s_stage__(f, tracer, args, kwargs)`` when ``f``'s type defines it
   (primitives, Cells, transformed functions such as ``grad(f)`` and ``jit(f)``);
2. a stager registered for the object itself (``register_call(obj, stage)``: the functional
   ops, ``Tensor`` called as a constructor), for its type or a base class
   (``register_stager(cls, stage)``), or by a predicate
   (``register_stager_where(pred, stage)``: NumPy callables, methods of Cells); every stager
   is called as ``stage(f, tracer, args, kwargs)``;
3. a class registered with ``register_constructor(cls)`` (or a subclass) is constructed while
   compiling, from compile-time constants; a static object is called while compiling, on
   compile-time constants;
4. a Python function is inlined: its source is interpreted;
   A decorator object that is transparent in compiled code (``@jit`` on ``construct``)
   names the function it wraps in its type's ``__s2s_function__`` attribute
   (:func:`~s2s_ad.trace.protocol.unwrap_function`);
5. builtins (``len``, ``range``, ``isinstance``, ``int()``, dtypes, ...) follow the builtin
   rules; anything else is an :class:`~s2s_ad.errors.UnsupportedSyntaxError` naming the
   callable and the user's line.
"""

from __future__ import annotations

from . import numpy_map
from .interpreter import Interpreter, parse_function, trace
from .protocol import (
    Leaf,
    call_static,
    construct_static,
    has_traced,
    is_tensor_value,
    register_call,
    register_constructor,
    register_leaf,
    register_stager,
    register_stager_where,
    register_static,
    unwrap_function,
)
from .tracer import Tracer, abstractify, inline_program, input_dtype

__all__ = [
    "Interpreter",
    "Leaf",
    "Tracer",
    "abstractify",
    "call_static",
    "construct_static",
    "has_traced",
    "inline_program",
    "input_dtype",
    "is_tensor_value",
    "numpy_map",
    "parse_function",
    "register_call",
    "register_constructor",
    "register_leaf",
    "register_stager",
    "register_stager_where",
    "register_static",
    "trace",
    "unwrap_function",
]
