"""Cell containers: ``SequentialCell`` and ``CellList``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ..errors import ArgumentError, S2SError
from .cell import Cell


def _check_cell(who: str, c: Any) -> Cell:
    if not isinstance(c, Cell):
        raise ArgumentError(f"{who}: expected Cells, got {type(c).__name__}")
    return c


class _Cells(Cell):
    """Sub-cells registered as attributes ``"0"``, ``"1"``, ... (or by their keys), so that their
    Parameters are named ``0.weight``, ``layers.1.bias`` as in MindSpore."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "cell_list", [])

    def _add(self, key: str, cell: Cell) -> None:
        setattr(self, key, _check_cell(type(self).__name__, cell))
        self.cell_list.append(cell)

    def __len__(self) -> int:
        return len(self.cell_list)

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cell_list)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return type(self)(self.cell_list[index])
        return self.cell_list[index]

    def append(self, cell: Cell) -> _Cells:
        self._add(str(len(self.cell_list)), cell)
        return self


class SequentialCell(_Cells):
    """``SequentialCell(*cells)``, ``SequentialCell([cells])`` or
    ``SequentialCell(OrderedDict(name=cell, ...))``: calls its cells in order, each on the
    previous one's output."""

    def __init__(self, *args: Any):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (dict, OrderedDict)):
            for k, c in args[0].items():
                self._add(str(k), c)
        else:
            cells = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
            for c in cells:
                self.append(c)

    def construct(self, x: Any) -> Any:
        for cell in self.cell_list:
            x = cell(x)
        return x


class CellList(_Cells):
    """``CellList(cells=None)``: a list of Cells whose Parameters belong to the holder (named
    ``layers.0.weight``, ...); iterate over it in ``construct``."""

    def __init__(self, cells: Any = None):
        super().__init__()
        for c in cells or ():
            self.append(c)

    def extend(self, cells: Any) -> CellList:
        for c in cells:
            self.append(c)
        return self

    def insert(self, index: int, cell: Cell) -> None:
        cells = list(self.cell_list)
        cells.insert(index, _check_cell("CellList", cell))
        for k in range(len(self.cell_list)):
            delattr(self, str(k))
        self.cell_list.clear()
        for c in cells:
            self.append(c)

    def construct(self, *inputs: Any) -> Any:
        raise S2SError("CellList is a container: iterate over it in construct (for cell in self.layers: ...)")
