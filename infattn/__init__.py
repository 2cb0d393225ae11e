"""infattn: infinite-width and infinite-head limits of attention networks."""

from infattn import predict, stax
from infattn.empirical import monte_carlo_kernel_fn
from infattn.kernel import Kernel

__version__ = "0.1.0"

__all__ = ["Kernel", "__version__", "monte_carlo_kernel_fn", "predict", "stax"]
