"""mlsec: a DevSecOps scanner for machine learning repositories.

The library API is :func:`mlsec.scan.scan`; the command line in :mod:`mlsec.cli` is a thin
wrapper around it.
"""

__version__ = "0.1.0"
