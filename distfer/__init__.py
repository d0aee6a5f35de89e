"""distfer: source-free domain adaptation for facial expression recognition.

Cluster-level pseudo-labelling (CluP, Conti et al., BMVC 2022) as a scalable experiment
system on Ray (Train, Tune, actors) with MLflow tracking.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distfer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
