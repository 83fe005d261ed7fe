"""Correlated shocks: the Cholesky factor of a correlation matrix, and the mix it makes.

Place in the pipeline: below the scenario schema and the market layer. The schema checks a
``[market] correlation`` matrix with ``cholesky`` (a matrix it cannot factor is not positive
semi-definite), and ``market/prices.py`` mixes the instruments' independent standard normal
shocks with the factor: ``Z' = L Z``, so ``cov(Z') = L L^T = C``.

Written by hand, not with ``numpy.linalg.cholesky``: that refuses a singular matrix (a
correlation of exactly 1 is one, and a perfectly hedged pair is a case worth running), and a
LAPACK call may round differently on another CPU. The matrices are small (one row per
instrument): the factor is computed in plain floats with ``math.fsum`` (exactly rounded
sums), and ``mix`` adds ``L[i, j] x Z[j]`` column by column in a fixed order, so the same
matrix and shocks give the same bits everywhere. For a semi-definite matrix a pivot within
``TOLERANCE`` of 0 gives a zero column (that instrument's shock adds nothing new).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TOLERANCE", "cholesky", "correlation_problem", "mix"]

# A pivot or residual this close to 0 counts as 0 (a matrix typed to a few decimals).
TOLERANCE = 1e-9


def cholesky(matrix: list[list[float]]) -> list[list[float]]:
    """The lower-triangular L with ``L L^T = matrix``; ValueError when ``matrix`` is not
    positive semi-definite (a negative pivot, or a zero pivot whose column is not zero)."""
    n = len(matrix)
    factor = [[0.0] * n for _ in range(n)]
    for j in range(n):
        pivot = matrix[j][j] - math.fsum(factor[j][k] * factor[j][k] for k in range(j))
        if pivot < -TOLERANCE:
            raise ValueError(f"not positive semi-definite (pivot {pivot:.3g} at row {j})")
        diagonal = math.sqrt(max(pivot, 0.0))
        factor[j][j] = diagonal
        for i in range(j + 1, n):
            rest = matrix[i][j] - math.fsum(factor[i][k] * factor[j][k] for k in range(j))
            if diagonal > TOLERANCE:
                factor[i][j] = rest / diagonal
            elif abs(rest) > TOLERANCE:
                raise ValueError(f"not positive semi-definite (rows {j} and {i} cannot be factored)")
    return factor


def correlation_problem(matrix: list[list[float]]) -> str | None:
    """What is wrong with ``matrix`` as a correlation matrix (None: nothing): square, entries
    in [-1, 1], unit diagonal, symmetric, positive semi-definite."""
    n = len(matrix)
    for i, row in enumerate(matrix):
        if len(row) != n:
            return f"expected a square matrix ({n} rows of {n}), row {i} has {len(row)} entries"
        for j, value in enumerate(row):
            if not math.isfinite(value) or abs(value) > 1.0:
                return f"entry [{i}][{j}] is {value!r}: a correlation lies in [-1, 1]"
    for i in range(n):
        if matrix[i][i] != 1.0:
            return f"entry [{i}][{i}] is {matrix[i][i]!r}: the diagonal must be 1"
        for j in range(i):
            if matrix[i][j] != matrix[j][i]:
                return f"entries [{i}][{j}] = {matrix[i][j]!r} and [{j}][{i}] = {matrix[j][i]!r} differ: it must be symmetric"
    try:
        cholesky(matrix)
    except ValueError as error:
        return f"{error}: no set of instruments has these correlations"
    return None


def mix(factor: list[list[float]], shocks: np.ndarray) -> np.ndarray:
    """``L Z``: row i is ``sum_j L[i][j] x shocks[j]`` added in order of j (one multiply and
    one add per element, no fused or blocked product: the same bits on every CPU)."""
    mixed = np.zeros_like(shocks)
    for i, row in enumerate(factor):
        for j in range(i + 1):
            if row[j] != 0.0:
                mixed[i] += row[j] * shocks[j]
    return mixed
