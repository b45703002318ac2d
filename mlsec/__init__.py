"""mlsec: a DevSecOps scanner for machine learning repositories.

The library API is :func:`mlsec.scan.scan`. The command line (:mod:`mlsec.cli`) is a thin
layer over it.
"""

__version__ = "0.1.0"
