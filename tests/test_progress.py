"""Visible progress: slow compiles, and every compile when verbose, say through the ``"s2s_ad"``
logger which function is at which stage and how long each stage took."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops, progress
from s2s_ad.runtime import cache_for


def _f(x):
    return (ops.tanh(ops.sin(x) * x) ** 3).sum()


def _g(x):
    return (ops.exp(x) * ops.cos(x)).sum()


def _h(x):
    return (ops.sin(x) * x).sum()


X = Tensor(np.linspace(0.0, 1.0, 6).reshape(2, 3))


@pytest.fixture
def verbose():
    s2s_ad.set_context(verbose=True)
    yield
    s2s_ad.set_context(verbose=False)


@pytest.fixture
def disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path / "cache"))


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "s2s_ad"]


def test_verbose_logs_every_compile_with_its_stages(mode, verbose, caplog, disk_cache):
    caplog.set_level(logging.INFO, logger="s2s_ad")
    s2s_ad.grad(_f)(X)
    (summary,) = [m for m in _messages(caplog) if m.startswith("compiled grad__f")]
    assert f"({mode})" in summary
    for stage in ("trace", "AD", "SymPy", "optimize", "codegen"):
        assert f"{stage} " in summary, summary
    assert ("Numba " in summary) == (mode == "numba")
    # a repeated call compiles nothing and says nothing
    caplog.clear()
    s2s_ad.grad(_f)(X)
    assert not _messages(caplog)


def test_a_quick_compile_is_silent_unless_verbose(mode, caplog, disk_cache):
    caplog.set_level(logging.INFO, logger="s2s_ad")
    s2s_ad.set_context(mode=s2s_ad.PYNATIVE_MODE)  # compiles in well under a second
    s2s_ad.grad(_g)(X)
    assert not _messages(caplog)


def test_a_slow_compile_reports_each_stage_as_it_starts(caplog, monkeypatch, pynative, disk_cache):
    caplog.set_level(logging.INFO, logger="s2s_ad")
    monkeypatch.setattr(progress, "SLOW", 0.0)  # every compile counts as slow
    s2s_ad.grad(_h)(X)
    messages = _messages(caplog)
    started = [m for m in messages if m.endswith("so far)")]
    assert any(m.startswith("grad__h: trace...") for m in started), messages
    assert any(m.startswith("grad__h: AD...") for m in started), messages
    assert len({m.split("...")[0] for m in started}) == len(started)  # each stage once
    assert messages[-1].startswith("compiled grad__h (python) in ")


def test_a_jacobian_build_reports_too(caplog, monkeypatch, pynative, disk_cache):
    caplog.set_level(logging.INFO, logger="s2s_ad")
    monkeypatch.setattr(progress, "SLOW", 0.0)

    def loss(x):
        return ops.tanh(x) * x

    s2s_ad.jacrev(loss)(Tensor(np.linspace(0.0, 1.0, 8)))
    assert any(m.startswith("compiled jacrev_loss") for m in _messages(caplog)), _messages(caplog)


def test_verbose_says_when_a_program_is_loaded_from_disk(verbose, caplog, pynative, disk_cache):
    caplog.set_level(logging.INFO, logger="s2s_ad")
    cache_for(_h).clear()  # compiled by another test, into another disk cache
    s2s_ad.grad(_h)(X)
    cache_for(_h).clear()  # as in a new process
    caplog.clear()
    s2s_ad.grad(_h)(X)
    (message,) = _messages(caplog)
    assert message.startswith("grad__h: loaded from the disk cache in ")


def test_the_verbose_settings(monkeypatch):
    monkeypatch.delenv("S2S_AD_VERBOSE", raising=False)
    assert not progress.verbose()
    monkeypatch.setenv("S2S_AD_VERBOSE", "1")
    assert progress.verbose()
    monkeypatch.setenv("S2S_AD_VERBOSE", "0")
    assert not progress.verbose()
    with pytest.raises(ValueError, match="verbose must be True or False"):
        s2s_ad.set_context(verbose="yes")
