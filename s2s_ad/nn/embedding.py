"""``Embedding``: a lookup table of vectors, a ``Gather`` of its rows."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import initializer
from ..errors import ArgumentValueError
from ..tensor import Parameter
from .cell import Cell


class Embedding(Cell):
    """``Embedding(vocab_size, embedding_size, use_one_hot=False, embedding_table="normal",
    dtype=int32, padding_idx=None)``: ``ids`` (an integer tensor of any shape) → the rows of
    ``embedding_table`` (shape ``(vocab_size, embedding_size)``) they name, of shape
    ``ids.shape + (embedding_size,)``. The gradient of the table adds the cotangents of the rows
    looked up (a scatter-add); the row of ``padding_idx`` starts as zeros. ``use_one_hot`` gives
    the same values (and gradients) through a one-hot matrix product, as in MindSpore."""

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        use_one_hot: bool = False,
        embedding_table: Any = "normal",
        dtype: Any = mstype.int32,
        padding_idx: int | None = None,
    ):
        super().__init__()
        for n, v in (("vocab_size", vocab_size), ("embedding_size", embedding_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ArgumentValueError(f"Embedding: {n} must be a positive int, got {v!r}")
        if padding_idx is not None and not -vocab_size <= padding_idx < vocab_size:
            raise ArgumentValueError(
                f"Embedding: padding_idx {padding_idx} is out of range for vocab_size {vocab_size}"
            )
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.use_one_hot = bool(use_one_hot)
        self.dtype = dtype
        self.padding_idx = padding_idx
        table = initializer(embedding_table, (vocab_size, embedding_size), mstype.float32)
        if padding_idx is not None:
            data = table.asnumpy().copy()
            data[padding_idx] = 0
            table = type(table)(data)
        self.embedding_table = Parameter(table, name="embedding_table")

    def construct(self, ids):
        if self.use_one_hot:
            hot = ops.one_hot(ids, self.vocab_size, 1.0, 0.0)
            flat = hot.reshape((-1, self.vocab_size))
            out = ops.matmul(flat, self.embedding_table)
            return out.reshape(ids.shape + (self.embedding_size,))
        return ops.gather(self.embedding_table, ids, 0)
