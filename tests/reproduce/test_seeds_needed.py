"""Power of the claim test and the seeds a claim needs (``reproduce.stats.power``, ``scripts/seeds_needed.py``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gradpath.reproduce.stats import power, seeds_needed

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seeds_needed.py"
_spec = importlib.util.spec_from_file_location("seeds_needed", SCRIPT)
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


@pytest.mark.parametrize("d, n", [(0.5, 64), (0.8, 26), (1.0, 17)])
def test_textbook_sample_sizes(d, n):
    """Cohen's table for the two-sided two-sample t-test, alpha 0.05, power 0.8: n per group by effect size d."""
    assert seeds_needed(d, 1.0) == n
    assert power(n, d, 1.0) >= 0.8 > power(n - 1, d, 1.0)


def test_scale_invariance_and_edges():
    assert seeds_needed(2.2, 5.0) == seeds_needed(0.44, 1.0)  # only diff / std matters
    assert power(1, 3.0, 1.0) == 0.0  # one seed: no test
    assert seeds_needed(1e-6, 1.0, limit=50) == 51


def test_script_lists_every_better_claim_with_the_papers_effect(capsys):
    assert script.main(["--std", "5", "1"]) == 0
    out = capsys.readouterr().out
    assert "| table3 | a stop-gradient on the identity hurts | +2.2 | 83 | 5 |" in out
    assert "| table5 | PRN improves YOLOR-v3 at equal FLOPs and parameters | +0.5 | 1571 | 64 |" in out
    assert "holds against" not in out  # "not worse" claims are left out
    assert script.main(["--std", "0"]) == 2
