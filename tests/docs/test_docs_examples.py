"""Every example in the guide pages (``docs/guide/*.md``) runs and prints what the page shows.

Each page is one program: its ```python blocks run in order in one namespace, so a block may
use what an earlier block defined. s2s_ad reads the source of the functions it compiles, so
each block is written to a real file (``example.py`` in a directory of its own under pytest's
``tmp_path``; a ``<!-- file: NAME.py -->`` line right before the block names the file) and
executed with ``exec(compile(source, path, "exec"), namespace)``.

A ```text block that follows a ```python block (only blank lines between) is that block's
expected standard output. It is compared with the captured output after trailing whitespace
is removed from every line and trailing blank lines are dropped; the block's directory in the
output (file paths in error messages) is written as ``/path/to/``. Printed numbers are compared
within a float tolerance (``tests/printed.py``: CPUs differ in the last bits of float results),
the text around them exactly. ```bash blocks and other
languages are not run, nor is a ```python block right after a ``<!-- norun -->`` line (code
that needs what a test cannot have: a cluster, a GPU, a user's files).

Every page starts in GRAPH_MODE, the default of a new process; the context mode and numpy's
print options are restored after each page.

To rewrite the expected outputs of a page from what its examples print now (then review the
diff!):

    python tests/docs/test_docs_examples.py --update docs/guide/grad.md
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from s2s_ad import context

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, also when run as a script
from printed import printed_diff, printed_equal  # noqa: E402

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
PAGES = sorted(p for p in GUIDE.glob("*.md") if p.name != "README.md")

_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_FILE_MARK = re.compile(r"^<!--\s*file:\s*([\w.-]+\.py)\s*-->$")
_NORUN_MARK = re.compile(r"^<!--\s*norun\s*-->$")


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    file: str  # file name the block is written to
    expected: str | None = None  # the following ```text block, if any
    expected_span: tuple[int, int] | None = None  # 0-based line range of the text block's body
    run: bool = True  # False after a <!-- norun --> line


def parse(text: str) -> list[Block]:
    """The fenced blocks of a markdown page; a ```text block right after a ```python block
    becomes that block's ``expected`` output instead of a block of its own."""
    lines = text.split("\n")
    blocks: list[Block] = []
    prev_end = -1
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        if j == len(lines):
            raise ValueError(f"line {start + 1}: unclosed ```{lang} block")
        body = "\n".join(lines[start + 1 : j])
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = _FILE_MARK.match(lines[k].strip()) if k >= 0 else None
        norun = k >= 0 and _NORUN_MARK.match(lines[k].strip()) is not None
        prev = blocks[-1] if blocks else None
        follows_python = (
            lang == "text"
            and prev is not None
            and prev.lang == "python"
            and prev.expected is None
            and all(not s.strip() for s in lines[prev_end + 1 : start])
        )
        if follows_python:
            prev.expected = body
            prev.expected_span = (start + 1, j)
        else:
            blocks.append(Block(lang, body + "\n", start + 1, mark.group(1) if mark else "example.py", run=not norun))
        prev_end = j
        i = j + 1
    return blocks


def normalize(out: str) -> str:
    return "\n".join(line.rstrip() for line in out.split("\n")).rstrip("\n")


def run_page(page: Path, workdir: Path) -> list[tuple[Block, str]]:
    """Run the python blocks of ``page``; returns each block with its captured output.
    Raises ``AssertionError`` naming the block when one fails."""
    ns: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    results = []
    for n, block in enumerate(b for b in parse(page.read_text()) if b.lang == "python" and b.run):
        d = workdir / f"block{n:02d}"
        d.mkdir(parents=True)
        path = d / block.file
        path.write_text(block.code)
        ns["__file__"] = str(path)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(block.code, str(path), "exec"), ns)
        except Exception:
            tb = traceback.format_exc()
            raise AssertionError(
                f"{page.name}:{block.line}: the example raised\n{tb}\n--- output so far:\n{buf.getvalue()}"
            ) from None
        results.append((block, buf.getvalue().replace(str(d) + os.sep, "/path/to/")))
    return results


@contextlib.contextmanager
def fresh_state():
    old_mode = context.get_context("mode")
    old_print = np.get_printoptions()
    context.set_context(mode=context.GRAPH_MODE)
    try:
        yield
    finally:
        context.set_context(mode=old_mode)
        np.set_printoptions(**old_print)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_examples(page: Path, tmp_path: Path):
    with fresh_state():
        results = run_page(page, tmp_path)
    assert results, f"{page.name} has no ```python examples"
    for block, out in results:
        if block.expected is None:
            continue
        got, want = normalize(out), normalize(block.expected)
        if not printed_equal(got, want):
            diff = printed_diff(got, want)
            pytest.fail(f"{page.name}:{block.line}: the output differs from the ```text block\n{diff}")


def test_readme_lists_every_page():
    readme = (GUIDE / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)", readme))
    missing = [p.name for p in PAGES if p.name not in linked]
    assert not missing, f"docs/guide/README.md does not link {missing}"
    dangling = [name for name in linked if not (GUIDE / name).exists()]
    assert not dangling, f"docs/guide/README.md links pages that do not exist: {dangling}"


def test_parse():
    page = "\n".join(
        [
            "```python",
            "print(1)",
            "```",
            "",
            "```text",
            "1",
            "```",
            "<!-- file: lj.py -->",
            "```python",
            "x = 2",
            "```",
            "```bash",
            "s2s-ad show lj.py:f",
            "```",
            "```text",
            "not an output of python",
            "```",
            "<!-- norun -->",
            "```python",
            "client = Client('tcp://scheduler:8786')",
            "```",
        ]
    )
    blocks = parse(page)
    assert [(b.lang, b.file, b.expected, b.run) for b in blocks] == [
        ("python", "example.py", "1", True),
        ("python", "lj.py", None, True),
        ("bash", "example.py", None, True),
        ("text", "example.py", None, True),
        ("python", "example.py", None, False),
    ]


def update(page: Path) -> None:
    """Rewrite the ```text blocks of ``page`` that follow ```python blocks with what the
    examples print now."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, fresh_state():
        results = run_page(page, Path(tmp))
    lines = page.read_text().split("\n")
    for block, out in sorted(results, key=lambda r: -r[0].line):
        if block.expected_span is None:
            continue
        lo, hi = block.expected_span
        lines[lo:hi] = normalize(out).split("\n")
    page.write_text("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--update":
        sys.exit("usage: python tests/docs/test_docs_examples.py --update PAGE.md [PAGE.md ...]")
    for arg in sys.argv[2:]:
        update(Path(arg).resolve())
        print(f"updated {arg}")
