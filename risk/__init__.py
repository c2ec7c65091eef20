"""Compliance: pre-trade controls and post-trade rules (Numba kernels with pure-Python references)."""
