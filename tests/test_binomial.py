"""The gate's binomial distribution against scipy.stats.binom, which it replaces only to start faster."""
import numpy as np
import pytest
from scipy.stats import binom, binomtest

from harness import binomial
from harness.metrics import mcnemar_worse_p

CASES = [(0, 0.5), (1, 0.3), (10, 0.5), (50, 0.04), (500, 0.924), (5000, 0.001), (50000, 0.2), (20, 0.0), (20, 1.0)]


@pytest.mark.parametrize("n, p", CASES)
def test_pmf_and_sf_agree_with_scipy_stats(n, p):
    k = np.arange(-2, n + 3)
    assert np.allclose(binomial.pmf(k, n, p), binom.pmf(k, n, p), rtol=1e-9, atol=1e-300)
    assert np.allclose(binomial.sf(k, n, p), binom.sf(k, n, p), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("n, p", CASES)
@pytest.mark.parametrize("q", [1e-9, 0.01, 0.5, 0.99])
def test_ppf_and_isf_agree_with_scipy_stats(n, p, q):
    assert binomial.ppf(q, n, p) == int(binom.ppf(q, n, p))
    assert binomial.isf(q, n, p) == int(binom.isf(q, n, p))


def test_pmf_broadcasts_over_a_grid_of_counts():
    b, c = np.arange(0, 30)[:, None], np.arange(0, 40)[None, :]
    remaining = np.maximum(100 - b, 0)
    assert np.allclose(binomial.pmf(c, remaining, 0.2), binom.pmf(c, remaining, 0.2), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("to_wrong, to_right", [(0, 0), (1, 0), (5, 0), (3, 7), (20, 5), (100, 60), (2000, 1890)])
def test_mcnemar_equals_scipys_exact_binomial_test(to_wrong, to_right):
    expected = 1.0 if to_wrong + to_right == 0 else binomtest(to_wrong, to_wrong + to_right, 0.5,
                                                              alternative="greater").pvalue
    assert mcnemar_worse_p(to_wrong, to_right) == pytest.approx(expected, rel=1e-9)
