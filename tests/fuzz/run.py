"""Run the differential fuzzer on many programs and report the failures by class.

    python -m tests.fuzz.run --programs 2000 --seed 0                  # PYNATIVE, every check
    python -m tests.fuzz.run --programs 300 --seed 0 --mode graph      # GRAPH (Numba), against PYNATIVE

    python -m tests.fuzz.run --programs 200 --seed 0 --control --mode both   # with control flow

``--control`` draws programs with control flow as users write it (``_gen.py``): ``if`` on a 0-d
tensor test and the ternary ``a if test else b``, ``for i in range(n)`` carrying tensors (``n``
up to the unroll limit: unrolled; longer: a loop region), ``while`` with a tensor test and a
carried counter bounding its trip count, regions nested in loop bodies and branches, and an
early ``return`` in a branch. Tests are drawn with a margin (``CONTROL_MARGIN``) so finite
differences take the same branches and trip counts. Control flow is drawn from an RNG stream of
its own and only with ``--control``: without it every seed gives the same straight-line program
as before, so earlier reproductions hold; ``--control`` programs are other programs.
``for`` bodies compute with the loop index (``0.1 * i``; see ``LOOP_INDEX`` in ``_gen.py``)
unless ``--no-loop-index`` is given.

Program ``k`` of a run is the program of seed ``seed + k`` (``tests/fuzz/_gen.py``), so a failure
is reproduced by ``--seed SEED --programs 1`` (plus ``--control`` where it was drawn with it). Every failing program's source is printed with the
failure. The exit status is 1 when a program failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _gen  # noqa: E402
from _check import run  # noqa: E402
from _gen import load, make  # noqa: E402


def _clip(text: str, head: int = 800, tail: int = 1500) -> str:
    return text if len(text) <= head + tail else f"{text[:head]}\n[...]\n{text[-tail:]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=200, help="how many programs (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="the seed of the first program (default 0)")
    ap.add_argument("--mode", choices=["pynative", "graph", "both"], default="pynative")
    ap.add_argument("--light", action="store_true", help="only vjp and jvp (no jit, value_and_grad, Cell, 2nd order)")
    ap.add_argument("--control", action="store_true", help="programs with control flow (if/for/while/return)")
    ap.add_argument(
        "--loop-index",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --control: for bodies also use the loop index (default: on)",
    )
    ap.add_argument("--show", type=int, default=20, help="print at most this many failing programs (default 20)")
    args = ap.parse_args(argv)
    _gen.LOOP_INDEX = args.loop_index

    counts: collections.Counter = collections.Counter()
    shown = 0
    t0 = time.time()
    modes = ["pynative", "graph"] if args.mode == "both" else [args.mode]
    done = 0
    try:
        for seed in range(args.seed, args.seed + args.programs):
            prog, xs = make(seed, control=args.control)
            load(prog)
            base = None
            for mode in modes:
                out = run(prog, xs, mode, base, full=not args.light)
                base = out
                if out.failure is None:
                    counts[(mode, "passed")] += 1
                    continue
                cls = f"FAILED: {out.kind}"
                counts[(mode, cls)] += 1
                if shown < args.show:
                    shown += 1
                    print(
                        f"{'=' * 78}\n[{mode}] seed {seed}: {cls}\n{prog.describe()}\n--- {_clip(out.failure.strip())}\n"
                    )
            done += 1
    except KeyboardInterrupt:  # the summary of the programs run so far
        print("interrupted")
    dt = time.time() - t0
    print(f"{done} programs from seed {args.seed}, modes {', '.join(modes)}, {dt:.0f} s")
    for (mode, cls), k in sorted(counts.items()):
        print(f"  {mode:9s} {cls}: {k}")
    return 1 if any(cls.startswith("FAILED") for _, cls in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
