"""How a claim is judged on per-seed metrics: mean ± std per row and Welch's t-test between two rows.

Welch's t-test (two-sided, unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``) at ALPHA = 0.05:

- a ``better`` claim (a > b) *holds* when a's mean is higher and p < ALPHA, is *reversed* when a's mean is lower
  and p < ALPHA, and is *within noise* otherwise;
- a ``not_worse`` claim (a keeps b's accuracy) is *reversed* only by a significant drop (a lower, p < ALPHA) and
  *holds* otherwise — it claims the absence of a loss, so noise cannot refute it; the difference and its
  confidence interval are reported so a reader sees how tight "holds" is.

With one seed per row no test is possible: the verdict is *n/a (1 seed)*.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "TEST_NAME", "mean_std", "compare", "power", "seeds_needed"]

ALPHA = 0.05
TEST_NAME = "Welch's t-test (two-sided, unequal variances), alpha 0.05, on the per-seed metrics"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0.0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def compare(kind: str, a: Sequence[float], b: Sequence[float]) -> dict:
    """Verdict of claim ``kind`` ("better" | "not_worse") for row a's values against row b's."""
    if kind not in ("better", "not_worse"):
        raise ValueError(f"unknown claim kind {kind!r}")
    if not len(a) or not len(b):  # a partial report (``--finished-only``) before a row has any finished run
        return {"kind": kind, "mean_a": None, "mean_b": None, "diff": None, "t": None, "p": None, "ci95": None,
                "verdict": "n/a (no finished run)"}
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    diff = ma - mb
    out = {"kind": kind, "mean_a": ma, "mean_b": mb, "diff": diff, "t": None, "p": None, "ci95": None}
    if len(a) < 2 or len(b) < 2:
        out["verdict"] = "n/a (1 seed)"
        return out
    if sa == 0.0 and sb == 0.0:
        # identical per-seed values on both sides: no spread to test against; equal means are no difference
        p = 1.0 if diff == 0 else 0.0
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        ci = (diff, diff)
    else:
        res = stats.ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
        low, high = res.confidence_interval(0.95)
        ci = (float(low), float(high))
    out.update(t=t, p=p, ci95=ci)
    significant = p < ALPHA
    if kind == "better":
        out["verdict"] = ("holds" if diff > 0 else "reversed") if significant else "within noise"
    else:
        out["verdict"] = "reversed" if significant and diff < 0 else "holds"
    return out


def power(n: int, diff: float, std: float, alpha: float = ALPHA) -> float:
    """Chance that the two-sided t-test at ``alpha`` finds a true difference ``diff`` between two rows of ``n``
    seeds each whose seed-to-seed std is ``std`` (equal n and std, where Welch's test is Student's with
    2n − 2 degrees of freedom; exact, by the noncentral t distribution)."""
    if n < 2:
        return 0.0
    df = 2 * n - 2
    nc = abs(diff) / (std * math.sqrt(2.0 / n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(diff: float, std: float, target: float = 0.8, alpha: float = ALPHA, limit: int = 100_000) -> int:
    """Seeds per row for ``power(n, diff, std) >= target``: how many runs a claim of effect ``diff`` needs before
    "within noise" means anything at a seed-to-seed std of ``std``. ``limit`` + 1 when even ``limit`` is too few."""
    if std <= 0:
        return 2
    lo, hi = 2, 2
    while power(hi, diff, std, alpha) < target:
        if hi > limit:
            return limit + 1
        lo, hi = hi, hi * 2
    while lo < hi:  # power grows with n: the smallest n that reaches the target
        mid = (lo + hi) // 2
        if power(mid, diff, std, alpha) >= target:
            hi = mid
        else:
            lo = mid + 1
    return hi
