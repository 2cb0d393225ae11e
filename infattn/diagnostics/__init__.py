"""Gaussianity diagnostics for samples of network outputs across random initialisations.

Every function takes ``samples`` of shape ``(n, *shape)``: ``n`` independent draws (one per
random initialisation) of the outputs at one or several inputs/positions. Trailing axes are
flattened in C order into ``d = prod(shape)`` *coordinates*; ``(n,)`` means ``d = 1``. NumPy and
JAX arrays are accepted; all statistics are computed in float64 with NumPy/SciPy.

Conventions (see ``docs/diagnostics.md``):

* Univariate tests act on each coordinate separately and return arrays of shape ``(d,)``.
* Bootstrap and permutation p-values are ``(1 + #{T_b >= T}) / (n_boot + 1)`` with a generator
  seeded by ``seed``, so results are reproducible and never exactly 0.
* Bad input raises ``ValueError`` naming the argument and what was expected.

Modules: :mod:`~infattn.diagnostics.samples` (input checks, shared helpers),
:mod:`~infattn.diagnostics.moments` (skewness, kurtosis and their tests),
:mod:`~infattn.diagnostics.univariate` (Shapiro-Wilk, Anderson-Darling, Lilliefors, Q-Q),
:mod:`~infattn.diagnostics.multivariate` (Mardia, energy),
:mod:`~infattn.diagnostics.two_sample` (KS, energy against reference draws),
:mod:`~infattn.diagnostics.heads` (kurtosis against heads) and
:mod:`~infattn.diagnostics.report` (everything in one table). Samples of finite networks
come from :func:`infattn.limits.sample_outputs`.
"""

from infattn.diagnostics.heads import HeadsScaling, kurtosis_vs_heads, plot_kurtosis_vs_heads
from infattn.diagnostics.moments import (
    REPORT_MIN_DRAWS,
    Moments,
    dagostino_pearson,
    kurtosis_test,
    skew_kurtosis,
    skewness_test,
)
from infattn.diagnostics.multivariate import (
    Mardia,
    energy_normality,
    expected_distance_to_normal,
    mardia,
)
from infattn.diagnostics.report import (
    ENERGY_MAX_DRAWS,
    GaussianityReport,
    ReportRow,
    gaussianity_report,
    holm,
)
from infattn.diagnostics.samples import Outcome
from infattn.diagnostics.two_sample import energy_two_sample, ks_two_sample
from infattn.diagnostics.univariate import (
    AD_CRITICAL_MODIFIED,
    AD_SIGNIFICANCE,
    SHAPIRO_MAX_DRAWS,
    AndersonDarling,
    anderson_darling,
    anderson_p_value,
    lilliefors,
    qq_data,
    shapiro_wilk,
)

__all__ = [
    "AD_CRITICAL_MODIFIED",
    "AD_SIGNIFICANCE",
    "ENERGY_MAX_DRAWS",
    "REPORT_MIN_DRAWS",
    "SHAPIRO_MAX_DRAWS",
    "AndersonDarling",
    "GaussianityReport",
    "HeadsScaling",
    "Mardia",
    "Moments",
    "Outcome",
    "ReportRow",
    "anderson_darling",
    "anderson_p_value",
    "dagostino_pearson",
    "energy_normality",
    "energy_two_sample",
    "expected_distance_to_normal",
    "gaussianity_report",
    "holm",
    "ks_two_sample",
    "kurtosis_test",
    "kurtosis_vs_heads",
    "lilliefors",
    "mardia",
    "plot_kurtosis_vs_heads",
    "qq_data",
    "shapiro_wilk",
    "skew_kurtosis",
    "skewness_test",
]
