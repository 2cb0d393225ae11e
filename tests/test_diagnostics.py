"""Tests of infattn.diagnostics against SciPy, hand computations and laws with known answers."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from infattn import diagnostics as dg

ALPHA = 0.01


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _student_t(nu: float, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return _rng(seed).standard_t(nu, size=shape)


def _scale_mixture(scales_sq: np.ndarray, seed: int) -> np.ndarray:
    """x = s z with s^2 drawn uniformly from ``scales_sq``; excess kurtosis 3 Var s^2 / E[s^2]^2."""
    rng = _rng(seed)
    s2 = rng.choice(scales_sq, size=20000)
    return np.sqrt(s2) * rng.standard_normal(20000)


def _location_mixture(shift: float, n: int, seed: int) -> np.ndarray:
    """0.5 N(-shift, 1) + 0.5 N(shift, 1): excess kurtosis -2 shift^4 / (1 + shift^2)^2."""
    rng = _rng(seed)
    return rng.choice([-shift, shift], size=n) + rng.standard_normal(n)


def _multivariate_t(nu: float, n: int, d: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    return rng.standard_normal((n, d)) / np.sqrt(rng.chisquare(nu, size=(n, 1)) / nu)


# --------------------------------------------------------------------------- moments


def test_skew_kurtosis_match_scipy_unbiased_estimators():
    x = _student_t(6, (500, 3), seed=1)
    m = dg.skew_kurtosis(x)
    np.testing.assert_allclose(m.skewness, stats.skew(x, bias=False), rtol=1e-12)
    np.testing.assert_allclose(m.excess_kurtosis, stats.kurtosis(x, bias=False), rtol=1e-12)


def test_exact_se_formula_and_gaussian_spread():
    n = 30
    m = dg.skew_kurtosis(_rng(2).standard_normal((n, 20000)))  # 20000 independent coordinates
    se_skew = np.sqrt(6 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
    se_kurt = np.sqrt(24 * n * (n - 1) ** 2 / ((n - 3) * (n - 2) * (n + 3) * (n + 5)))
    np.testing.assert_allclose(m.skewness_se, se_skew, rtol=1e-12)
    np.testing.assert_allclose(m.excess_kurtosis_se, se_kurt, rtol=1e-12)
    np.testing.assert_allclose(m.skewness.std(), se_skew, rtol=0.03)
    np.testing.assert_allclose(m.excess_kurtosis.std(), se_kurt, rtol=0.05)
    assert abs(m.excess_kurtosis.mean()) < 4 * se_kurt / np.sqrt(20000)  # G2 is unbiased


def test_gaussian_kurtosis_zero_within_se_and_bootstrap_se_agrees():
    x = _rng(3).standard_normal((5000, 2))
    exact = dg.skew_kurtosis(x)
    boot = dg.skew_kurtosis(x, se="bootstrap", n_boot=200, seed=0)
    assert np.all(np.abs(exact.excess_kurtosis) < 3 * exact.excess_kurtosis_se)
    assert np.all(np.abs(exact.skewness) < 3 * exact.skewness_se)
    np.testing.assert_allclose(boot.excess_kurtosis_se, exact.excess_kurtosis_se, rtol=0.25)
    assert boot.se_method == "bootstrap"


@pytest.mark.parametrize(
    ("samples", "known"),
    [
        (_student_t(12, (20000,), seed=4), 6 / (12 - 4)),
        (_scale_mixture(np.array([0.25, 1.75]), seed=5), 3 * 0.5625 / 1.0),
        (_scale_mixture(np.array([1.0, 2.0, 6.0]), seed=6), 3 * (np.var([1, 2, 6]) / 3**2)),
        (_location_mixture(2.0, 20000, seed=7), -2 * 2.0**4 / (1 + 2.0**2) ** 2),
    ],
    ids=["student_t12", "scale_mixture_2", "scale_mixture_3", "location_mixture"],
)
def test_excess_kurtosis_of_known_laws(samples, known):
    m = dg.skew_kurtosis(samples, se="bootstrap", n_boot=100, seed=0)
    g2, se = m.excess_kurtosis[0], m.excess_kurtosis_se[0]
    assert se < 0.25 * abs(known)
    assert abs(g2 - known) < 4 * se
    assert np.sign(g2) == np.sign(known)


# --------------------------------------------------------------------------- univariate tests


def test_shapiro_matches_scipy_and_thins_large_samples():
    x = _rng(8).standard_normal((300, 2))
    sw = dg.shapiro_wilk(x)
    for j in range(2):
        ref = stats.shapiro(x[:, j])
        assert sw.statistic[j] == pytest.approx(ref.statistic)
        assert sw.p_value[j] == pytest.approx(ref.pvalue)
    big = _rng(9).standard_normal(6000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SciPy warns for n > 5000; thinning must avoid it
        thinned = dg.shapiro_wilk(big)
    kept = big[np.linspace(0, 5999, 5000).round().astype(int)]
    assert thinned.p_value[0] == pytest.approx(stats.shapiro(kept).pvalue)


def test_anderson_statistic_and_critical_values_match_scipy():
    x = _student_t(5, (200, 2), seed=10)
    ad = dg.anderson_darling(x)
    for j in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ref = stats.anderson(x[:, j], dist="norm")
        assert ad.statistic[j] == pytest.approx(ref.statistic)
        np.testing.assert_allclose(ad.critical_values[j], ref.critical_values, atol=5e-4)
    np.testing.assert_allclose(ad.significance_levels * 100, ref.significance_level)
    np.testing.assert_allclose(ad.modified_statistic, ad.statistic * (1 + 0.75 / 200 + 2.25 / 4e4))


def test_anderson_p_value_matches_tables_and_simulated_null():
    p = dg.anderson_p_value(dg.AD_CRITICAL_MODIFIED)
    np.testing.assert_allclose(p, dg.AD_SIGNIFICANCE, rtol=0.03)
    assert 0.0 <= dg.anderson_p_value(1e4) < 1e-100
    grid = np.linspace(0.05, 20, 400)
    assert np.all(np.diff(dg.anderson_p_value(grid)) <= 1e-12)
    # Null distribution of A^2 by hand (vectorised) for n = 30.
    n = 30
    z = np.sort(_rng(11).standard_normal((4000, n)), axis=1)
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
    i = np.arange(1, n + 1)
    a2 = -n - np.mean((2 * i - 1) * (stats.norm.logcdf(z) + stats.norm.logsf(z[:, ::-1])), axis=1)
    null_p = dg.anderson_p_value(a2 * (1 + 0.75 / n + 2.25 / n**2))
    assert abs(np.mean(null_p <= 0.05) - 0.05) < 0.011
    assert abs(np.mean(null_p <= 0.5) - 0.5) < 0.025


def test_lilliefors_matches_goodness_of_fit_and_corrects_plain_ks():
    x = _rng(12).laplace(size=150)
    ours = dg.lilliefors(x, n_boot=2000, seed=0)
    ref = stats.goodness_of_fit(stats.norm, x, statistic="ks", n_mc_samples=2000, rng=1)
    assert ours.statistic[0] == pytest.approx(ref.statistic, rel=1e-10)
    assert abs(ours.p_value[0] - ref.pvalue) < 0.03
    plain = stats.kstest(x, "norm", args=(x.mean(), x.std(ddof=1))).pvalue
    assert ours.p_value[0] < plain  # the plain p-value is conservative with fitted parameters


def test_scipy_wrapped_tests_are_vectorised_per_coordinate():
    x = _student_t(8, (400, 3), seed=13)
    for ours, theirs in [
        (dg.skewness_test(x), stats.skewtest(x)),
        (dg.kurtosis_test(x), stats.kurtosistest(x)),
        (dg.dagostino_pearson(x), stats.normaltest(x)),
    ]:
        np.testing.assert_allclose(ours.statistic, theirs.statistic)
        np.testing.assert_allclose(ours.p_value, theirs.pvalue)


def test_qq_data_uses_blom_positions_of_fitted_normal():
    x = _rng(14).normal(3.0, 2.0, size=(400, 2))
    theory, sample = dg.qq_data(x, coordinate=1)
    col = x[:, 1]
    pos = (np.arange(1, 401) - 0.375) / 400.25
    np.testing.assert_allclose(theory, col.mean() + col.std(ddof=1) * stats.norm.ppf(pos))
    np.testing.assert_array_equal(sample, np.sort(col))
    assert np.corrcoef(theory, sample)[0, 1] > 0.995


# --------------------------------------------------------------------------- multivariate


def _mardia_by_hand(x: np.ndarray) -> tuple[float, float]:
    c = x - x.mean(axis=0)
    gram = c @ np.linalg.inv(c.T @ c / len(x)) @ c.T
    return float(np.mean(gram**3)), float(np.mean(np.diag(gram) ** 2))


@pytest.mark.parametrize("n", [15, 60])
def test_mardia_matches_hand_computation(n):
    x = _multivariate_t(7, n, 3, seed=15)
    b1, b2 = _mardia_by_hand(x)
    res = dg.mardia(x)
    k = 4 * (n + 1) * (n + 3) / (n * ((n + 1) * 4 - 6)) if n < 20 else 1.0
    assert res.skewness == pytest.approx(b1, rel=1e-9)
    assert res.kurtosis == pytest.approx(b2, rel=1e-9)
    assert res.skewness_statistic == pytest.approx(n * k * b1 / 6, rel=1e-9)
    assert res.skewness_df == 10
    assert res.skewness_p == pytest.approx(stats.chi2.sf(n * k * b1 / 6, 10))
    uncorrected = dg.mardia(x, small_sample_correction=False)
    assert uncorrected.skewness_statistic == pytest.approx(n * b1 / 6, rel=1e-9)


def test_mardia_gaussian_kurtosis_is_d_d_plus_2_within_se():
    d = 3
    res = dg.mardia(_rng(16).standard_normal((3000, d)))
    assert abs(res.kurtosis - d * (d + 2)) < 3 * res.kurtosis_se
    assert res.kurtosis_se == pytest.approx(np.sqrt(8 * d * (d + 2) / 3000), rel=0.01)
    assert res.skewness_p > ALPHA
    assert res.kurtosis_p > ALPHA


def test_mardia_rejects_multivariate_t():
    res = dg.mardia(_multivariate_t(6, 1000, 3, seed=17))
    assert res.kurtosis > 15  # d(d+2)(nu-2)/(nu-4) = 30 in the population
    assert res.kurtosis_p < 1e-6


def test_expected_distance_to_normal():
    r = np.linspace(0.0, 12.0, 25)
    closed_1d = 2 * stats.norm.pdf(r) + r * (2 * stats.norm.cdf(r) - 1)
    np.testing.assert_allclose(dg.expected_distance_to_normal(r**2, 1), closed_1d, rtol=1e-10)
    z = _rng(18).standard_normal((200000, 3))
    a = np.array([1.5, 0.0, 0.0])
    mc = np.linalg.norm(a - z, axis=1).mean()
    assert dg.expected_distance_to_normal(2.25, 3) == pytest.approx(mc, rel=0.005)


def test_energy_normality_statistic_by_hand_in_one_dimension():
    x = _rng(19).exponential(size=80)
    y = np.sort((x - x.mean()) / x.std(ddof=1))
    n = len(y)
    to_normal = np.mean(2 * stats.norm.pdf(y) + y * (2 * stats.norm.cdf(y) - 1))
    pairwise = 2 * np.sum((2 * np.arange(1, n + 1) - n - 1) * y) / n**2
    expected = n * (2 * to_normal - 2 / np.sqrt(np.pi) - pairwise)
    assert dg.energy_normality(x, n_boot=1).statistic == pytest.approx(expected, rel=1e-9)


def test_energy_normality_accepts_gaussian_and_rejects_heavy_tails():
    gauss = dg.energy_normality(_rng(20).standard_normal((200, 2)), n_boot=199, seed=0)
    heavy = dg.energy_normality(_multivariate_t(4, 200, 2, seed=21), n_boot=199, seed=0)
    assert gauss.p_value > ALPHA
    assert heavy.p_value <= ALPHA


# --------------------------------------------------------------------------- two-sample


def test_ks_two_sample_matches_scipy():
    x, r = _rng(22).standard_normal((100, 2)), _rng(23).standard_normal((150, 2)) + 0.2
    res = dg.ks_two_sample(x, r)
    for j in range(2):
        ref = stats.ks_2samp(x[:, j], r[:, j])
        assert res.statistic[j] == pytest.approx(ref.statistic)
        assert res.p_value[j] == pytest.approx(ref.pvalue)


def test_energy_two_sample_statistic_matches_scipy_and_hand():
    x, r = _rng(24).standard_normal(60), _rng(25).standard_normal(90) * 1.3
    t = float(dg.energy_two_sample(x, r, n_perm=1).statistic)
    assert np.sqrt(t * 150 / (60 * 90)) == pytest.approx(stats.energy_distance(x, r), rel=1e-10)
    x2, r2 = _rng(26).standard_normal((40, 3)), _rng(27).standard_normal((50, 3))
    e = 2 * cdist(x2, r2).mean() - cdist(x2, x2).mean() - cdist(r2, r2).mean()
    t2 = float(dg.energy_two_sample(x2, r2, n_perm=1).statistic)
    assert t2 == pytest.approx(40 * 50 / 90 * e, rel=1e-10)


@pytest.mark.parametrize(
    ("alternative", "rejects"),
    [
        (lambda z: z, False),
        (lambda z: z + np.array([0.4, 0.0]), True),
        (lambda z: 1.6 * z, True),
    ],
    ids=["same_law", "shifted", "wider"],
)
def test_energy_two_sample_permutation_test(alternative, rejects):
    x = alternative(_rng(28).standard_normal((250, 2)))
    r = _rng(29).standard_normal((250, 2))
    res = dg.energy_two_sample(x, r, n_perm=199, seed=0)
    assert (res.p_value <= ALPHA) == rejects


# --------------------------------------------------------------------------- heads scaling


def _average_of_heads(heads: int, n: int, seed: int) -> np.ndarray:
    """Mean of H iid Laplace variables (s^2 ~ Exp(1) scale mixture, kurtosis 3): kurtosis 3/H."""
    rng = _rng(seed)
    s = np.sqrt(rng.exponential(size=(n, heads)))
    return (s * rng.standard_normal((n, heads))).sum(axis=1) / np.sqrt(heads)


@pytest.fixture(scope="module")
def heads_scaling() -> dg.HeadsScaling:
    samples = {h: _average_of_heads(h, 20000, seed=30 + h) for h in (1, 2, 4, 8, 16)}
    return dg.kurtosis_vs_heads(samples, n_boot=100, seed=0)


def test_kurtosis_vs_heads_recovers_inverse_law(heads_scaling):
    s = heads_scaling
    np.testing.assert_array_equal(s.heads, [1, 2, 4, 8, 16])
    assert s.slope_se < 0.15
    assert abs(s.slope + 1) < 3 * s.slope_se
    assert abs(s.intercept - np.log(3)) < 3 * s.intercept_se
    assert np.all(np.abs(s.kurtosis - 3 / s.heads) < 4 * s.kurtosis_se)
    assert 0 < s.reduced_chi2 < 5


def test_kurtosis_vs_heads_rejects_non_positive_kurtosis():
    samples = {1: _average_of_heads(1, 2000, seed=40), 4: _location_mixture(2.0, 2000, seed=41)}
    with pytest.raises(ValueError, match=r"samples_by_heads: excess kurtosis must be > 0.*H=4"):
        dg.kurtosis_vs_heads(samples, n_boot=20)


# --------------------------------------------------------------------------- report


def test_holm_adjustment_by_hand():
    adjusted = dg.holm(np.array([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, 0.5])


def test_report_on_gaussian_samples_does_not_reject():
    rep = dg.gaussianity_report(_rng(42).standard_normal((1000, 2)), alpha=ALPHA, n_boot=999)
    assert len(rep.p_values) == 6 * 2 + 3
    assert min(rep.p_values.values()) > ALPHA
    assert not rep.rejects_gaussian
    assert rep.rejects_reference is None
    text = str(rep)
    for label in ["Shapiro-Wilk W", "Anderson-Darling A2", "Lilliefors KS D", "Mardia kurtosis b2"]:
        assert label in text
    assert "Gaussianity not rejected at alpha = 0.01" in text


@pytest.mark.parametrize(("shift", "differs"), [(0.0, False), (0.5, True)])
def test_report_rejects_student_t_and_compares_with_reference(shift, differs):
    t5 = _student_t(5, (1000,), seed=43)
    reference = _student_t(5, (800,), seed=44) + shift
    rep = dg.gaussianity_report(t5, reference=reference, n_boot=199)
    assert rep.rejects_gaussian
    assert rep.rejects_reference == differs
    for key in ["excess_kurtosis[0]", "shapiro_wilk[0]", "anderson_darling[0]"]:
        assert rep.p_values[key] < ALPHA
    kurt = next(r for r in rep.rows if r.key == "excess_kurtosis")
    assert kurt.value > 3 * kurt.se
    assert "Gaussianity REJECTED" in str(rep)
    assert "non-Gaussian" in str(rep)
    assert ("Same law as reference REJECTED" in str(rep)) == differs


def test_report_location_mixture_has_negative_kurtosis_and_rejects():
    rep = dg.gaussianity_report(_location_mixture(2.0, 1000, seed=45), n_boot=199)
    kurt = next(r for r in rep.rows if r.key == "excess_kurtosis")
    assert kurt.value < -3 * kurt.se
    assert rep.rejects_gaussian


def test_report_correction_none_and_jax_input():
    jnp = pytest.importorskip("jax.numpy")
    x = _rng(46).standard_normal((50, 2, 2)).astype(np.float32)
    rep = dg.gaussianity_report(x, n_boot=99, correction="none")
    rep_jax = dg.gaussianity_report(jnp.asarray(x), n_boot=99, correction="none")
    assert all(r.p_adjusted == r.p_value for r in rep.rows)
    assert rep.p_values == rep_jax.p_values
    assert rep.samples.shape == (50, 4)
    assert not any("bootstrap p-values" in note for note in rep.notes)


def test_report_notes_small_n_boot_under_holm():
    rep = dg.gaussianity_report(_rng(47).standard_normal((50, 2)), n_boot=99)
    assert any("reject alone only with n_boot >= 1499" in note for note in rep.notes)


# --------------------------------------------------------------------------- plots


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_report_plot_has_histogram_and_qq_axes(pyplot):
    x = _student_t(6, (300, 2), seed=48)
    rep = dg.gaussianity_report(x, reference=_rng(49).standard_normal((300, 2)), n_boot=99)
    fig = rep.plot(coordinate=1, bins=30)
    hist_ax, qq_ax = fig.axes
    labels = [t.get_text() for t in hist_ax.get_legend().get_texts()]
    assert sorted(labels) == ["fitted normal", "reference", "reference KDE", "samples"]
    assert qq_ax.get_title() == "Q-Q"
    assert len(qq_ax.lines[0].get_xdata()) == 300
    fig.canvas.draw()


def test_plot_kurtosis_vs_heads_is_log_log(pyplot, heads_scaling):
    fig = dg.plot_kurtosis_vs_heads(heads_scaling)
    (ax,) = fig.axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert len(ax.lines) >= 2
    _, given = pyplot.subplots()
    assert dg.plot_kurtosis_vs_heads(heads_scaling, ax=given) is given.figure
    fig.canvas.draw()


def test_import_does_not_import_matplotlib():
    code = "import sys, infattn.diagnostics; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- bad input

_X = _rng(50).standard_normal((40, 3))
_NAN = _X.copy()
_NAN[3, 1] = np.nan
_INF = _X.copy()
_INF[0, 0] = np.inf
_CONST = _X.copy()
_CONST[:, 2] = 1.0
_DEPENDENT = np.concatenate([_X, _X[:, :1] + _X[:, 1:2]], axis=1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dg.gaussianity_report(np.zeros(1)), r"samples: .*at least 20 draws.*got 1"),
        (lambda: dg.gaussianity_report(_X[:10]), r"samples: .*at least 20 draws.*got 10"),
        (lambda: dg.ks_two_sample(_X[:1], _X), r"samples: .*at least 2 draws"),
        (lambda: dg.ks_two_sample(_X, _X[:1]), r"reference: .*at least 2 draws"),
        (lambda: dg.skew_kurtosis(_X[:3]), r"samples: skewness/kurtosis needs at least 4"),
        (lambda: dg.shapiro_wilk(_X[:2]), r"samples: Shapiro-Wilk needs at least 3"),
        (lambda: dg.anderson_darling(_X[:7]), r"samples: Anderson-Darling needs at least 8"),
        (lambda: dg.lilliefors(_X[:4]), r"samples: Lilliefors needs at least 5"),
        (lambda: dg.skewness_test(_X[:7]), r"samples: skewtest needs at least 8"),
        (lambda: dg.kurtosis_test(_X[:19]), r"samples: kurtosistest needs at least 20"),
        (lambda: dg.dagostino_pearson(_X[:19]), r"samples: normaltest needs at least 20"),
        (lambda: dg.mardia(_X[:4]), r"samples: Mardia's tests need n >= d \+ 2 = 5"),
        (lambda: dg.energy_normality(_X[:4]), r"samples: the energy test need"),
        (lambda: dg.gaussianity_report(_NAN), r"samples: expected finite values, found 1"),
        (lambda: dg.skew_kurtosis(_INF), r"samples: expected finite values"),
        (lambda: dg.ks_two_sample(_X, _NAN), r"reference: expected finite values"),
        (lambda: dg.gaussianity_report(_CONST), r"samples: coordinates \[2\] are constant"),
        (lambda: dg.mardia(_DEPENDENT), r"samples: the sample covariance is singular"),
        (lambda: dg.gaussianity_report(3.0), r"samples: expected an array .*scalar"),
        (lambda: dg.skew_kurtosis(_X + 1j), r"samples: expected real numbers"),
        (lambda: dg.skew_kurtosis(np.zeros((10, 0))), r"samples: expected at least one coord"),
        (lambda: dg.gaussianity_report(_X, reference=_X[:, :2]), r"reference: expected shape"),
        (lambda: dg.ks_two_sample(_X, _X.reshape(40, 3, 1)), r"reference: expected shape"),
        (lambda: dg.energy_two_sample(_X, _X[:, 0]), r"reference: expected shape \(m, 3\)"),
        (lambda: dg.gaussianity_report(_X, alpha=0.0), r"alpha: expected a number in \(0, 1\)"),
        (lambda: dg.gaussianity_report(_X, alpha=1.5), r"alpha"),
        (lambda: dg.gaussianity_report(_X, n_boot=0), r"n_boot: expected an integer >= 1"),
        (lambda: dg.gaussianity_report(_X, correction="bh"), r"correction: expected"),
        (lambda: dg.energy_two_sample(_X, _X, n_perm=0), r"n_perm: expected an integer"),
        (lambda: dg.skew_kurtosis(_X, se="jackknife"), r"se: expected 'exact' or 'bootstrap'"),
        (lambda: dg.skew_kurtosis(_X, se="bootstrap", n_boot=1), r"n_boot: .*>= 2"),
        (lambda: dg.qq_data(_X, coordinate=3), r"coordinate: expected an integer in \[0, 3\)"),
        (lambda: dg.kurtosis_vs_heads({1: _X}), r"samples_by_heads: .*>= 2 entries"),
        (lambda: dg.kurtosis_vs_heads({0: _X, 2: _X}), r"samples_by_heads: .*H >= 1"),
        (lambda: dg.kurtosis_vs_heads({1: _X, 2: _X[:, :2]}), r"samples_by_heads: .*trailing"),
        (lambda: dg.kurtosis_vs_heads({1: _X, 2: _NAN}), r"samples_by_heads\[2\]: expected fin"),
        (lambda: dg.kurtosis_vs_heads({1: _X, 2: _X[:3]}), r"samples_by_heads\[2\]: .*least 4"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
