"""Means with confidence intervals over a few replications of an evaluation."""

import math

import numpy as np
import scipy.stats


def mean_and_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and Student-t half width (the normal 1.96 is too narrow for few replications); nan width for n == 1."""
    values = np.asarray(values, dtype=np.float64).ravel()  # (n,)
    assert len(values) >= 1 and 0 < confidence < 1, (len(values), confidence)
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan
    t = scipy.stats.t.ppf((1 + confidence) / 2, df=len(values) - 1)
    return mean, float(t * values.std(ddof=1) / math.sqrt(len(values)))


def format_interval(mean: float, half_width: float, digits: int = 3) -> str:
    """'0.512 ± 0.021', or just '0.512' when the half width is nan."""
    if math.isnan(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"
