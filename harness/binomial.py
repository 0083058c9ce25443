"""The binomial distribution as the gate uses it, from scipy.special's incomplete beta (cephes), which imports in a
tenth of a second where scipy.stats takes half a second of every process; tests/test_binomial.py holds it to
scipy.stats.binom. Counts `k` and `n` are integers (arrays broadcast as in numpy; `n` of ppf and isf is one
integer), probabilities `p` in [0, 1], tail masses `q` in (0, 1)."""
from __future__ import annotations

import numpy as np


def sf(k, n, p):
    """P(X > k) for X ~ Binomial(n, p); 1 for k < 0, 0 for k >= n."""
    from scipy.special import bdtrc

    k, n = np.asarray(k), np.asarray(n)
    with np.errstate(invalid="ignore"):  # bdtrc is nan for k >= n, where the answer is 0
        inside = bdtrc(np.clip(k, -1, np.maximum(n - 1, -1)), n, p)
    return np.where(k >= n, 0.0, np.where(k < 0, 1.0, inside))


def pmf(k, n, p):
    """P(X = k) for X ~ Binomial(n, p), in log space (so large n neither overflows nor underflows early); 0 for k
    outside 0..n."""
    from scipy.special import gammaln, xlog1py, xlogy

    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    inside = (k >= 0) & (k <= n)
    kk, nn = np.where(inside, k, 0.0), np.where(inside, n, 0.0)
    log_pmf = gammaln(nn + 1) - gammaln(kk + 1) - gammaln(nn - kk + 1) + xlogy(kk, p) + xlog1py(nn - kk, -p)
    return np.where(inside, np.exp(log_pmf), 0.0)


def ppf(q: float, n: int, p: float) -> int:
    """The smallest k with P(X <= k) >= q."""
    cdf = 1 - sf(np.arange(n + 1), n, p)
    return int(min(np.searchsorted(cdf, q, side="left"), n))


def isf(q: float, n: int, p: float) -> int:
    """The smallest k with P(X > k) <= q."""
    return int(np.argmax(sf(np.arange(n + 1), n, p) <= q))
