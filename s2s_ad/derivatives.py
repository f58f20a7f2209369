"""Derivative programs shaped for the API: the user-facing flags mapped onto the AD core.

The AD core (:mod:`s2s_ad.ad.reverse`, :mod:`s2s_ad.ad.forward`) takes a program, the
variables to differentiate and the seeds, nothing else. This module decides what the API's
options mean in those terms: which outputs are seeded (with ``has_aux`` only the first),
whether the seed is an input (``sens_param``) or ones, whether the value is returned, which
inputs are Parameters (the caller passes their leaf positions), and how arguments and
results are structured (by argument position, like the user's function).
"""

from __future__ import annotations

from collections.abc import Sequence

from .ad.common import derived_program
from .ad.forward import jvp_program
from .ad.reverse import backward
from .ir import Atom, Aval, Builder, Program, Var, arg_leaf_ranges, copy_program, treedef_leaves
from .primitives import fill
from .progress import stage


@stage("AD")
def grad_program(
    prog: Program,
    wrt_args: Sequence[int],
    wrt_params: Sequence[int | Aval],
    sens_param: bool,
    with_value: bool = False,
    name: str | None = None,
    has_aux: bool = False,
) -> Program:
    """The reverse-mode program of ``prog`` for the gradient APIs.

    ``wrt_args`` are argument positions; ``wrt_params`` are the weights, each the position of
    its variable in ``prog.invars`` or, for a weight ``prog`` does not read, its :class:`Aval`
    (its gradient is zeros). Outputs, as a tree: ``(value, (grad of each arg...), (grad of
    each weight...))`` where ``value`` is the forward output (only when ``with_value``; else
    ``()``) and each arg gradient has the structure of that argument. With ``sens_param`` the
    program takes one more argument, the output cotangent, structured like ``prog``'s output;
    without it every float output is seeded with ones. With ``has_aux`` (``prog`` returns a
    tuple) only the first element of the output is seeded, and the sens is structured like it.
    """
    b = Builder()
    new_in, outs = copy_program(b, prog)
    args = new_in[: prog.n_args]
    arg_names = list(prog.arg_names)
    in_tree = prog.in_tree
    diff_tree = prog.out_tree[1][0] if has_aux else prog.out_tree
    n_diff = treedef_leaves(diff_tree)
    sens_vars: list[Var] = []
    if sens_param:
        sens_vars = [Var(o.aval, "sens") for o in prog.outs[:n_diff]]
        in_tree = ("tuple", (*in_tree[1], diff_tree))
        arg_names.append("sens")
        seeds: list[Atom | None] = list(sens_vars)
    else:
        # the seeds of ones start the adjoint sweep: adjoint equations at the line of the
        # equation that made each output (codegen comments them ``# adjoint of file:line``)
        producer = {o: e for e in b.eqns for o in e.outs}
        adjoint, b.adjoint = b.adjoint, True
        seeds = []
        for o in outs[:n_diff]:
            e = producer.get(o) if isinstance(o, Var) else None
            b.loc = None if e is None else e.loc
            seeds.append(fill(b, o.shape, 1, o.dtype) if o.dtype.kind == "f" else None)
        b.loc, b.adjoint = None, adjoint

    ranges = arg_leaf_ranges(prog)
    wrt = [v for pos in wrt_args for v in args[ranges[pos][0] : ranges[pos][1]]]
    wrt += [new_in[p] for p in wrt_params if isinstance(p, int)]
    grads = backward(b, b.eqns[:], outs, seeds, wrt)

    n_arg_leaves = len(wrt) - sum(isinstance(p, int) for p in wrt_params)
    arg_grads, k = grads[:n_arg_leaves], n_arg_leaves
    param_grads: list[Atom] = []
    for p in wrt_params:
        if isinstance(p, int):
            param_grads.append(grads[k])
            k += 1
        else:
            param_grads.append(fill(b, tuple(p.shape), 0, p.dtype))

    value_tree = prog.out_tree if with_value else ("tuple", ())
    out_tree = (
        "tuple",
        (
            value_tree,
            ("tuple", tuple(ranges[p][2] for p in wrt_args)),
            ("tuple", (None,) * len(wrt_params)),
        ),
    )
    return derived_program(
        prog,
        b,
        name or f"grad_{prog.name}",
        args + sens_vars,
        new_in,
        in_tree,
        (outs if with_value else []) + arg_grads + param_grads,
        out_tree,
        arg_names,
    )


@stage("AD")
def jvp_args_program(prog: Program, wrt_args: Sequence[int], name: str | None = None) -> Program:
    """The forward-mode program of ``prog`` for the jvp API.

    It takes ``prog``'s arguments followed by one tangent per argument position in
    ``wrt_args`` (structured like that argument), and returns ``(value, tangent)``, each
    structured like ``prog``'s output. Arguments outside ``wrt_args`` have zero tangent.
    """
    ranges = arg_leaf_ranges(prog)
    p = jvp_program(prog, [i for pos in wrt_args for i in range(ranges[pos][0], ranges[pos][1])], name)
    arg_names = [*prog.arg_names, *(f"{prog.arg_names[pos]}_dot" for pos in wrt_args)]
    in_tree = ("tuple", (*prog.in_tree[1], *(ranges[pos][2] for pos in wrt_args)))
    return p.replace(in_tree=in_tree, arg_names=arg_names)
