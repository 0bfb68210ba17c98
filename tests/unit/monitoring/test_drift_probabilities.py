import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from monitoring.drift import comparable_probabilities


def test_float32_and_float64_copies_of_tied_probabilities_compare_as_equal() -> None:
    rng = np.random.default_rng(0)
    # A tree model's outputs: few distinct values, many ties.
    levels = rng.random(40)
    native = pd.DataFrame({"probability": rng.choice(levels, 2_000)})
    served = pd.DataFrame({"probability": native["probability"].astype(np.float32)})
    assert not np.array_equal(native["probability"], served["probability"].astype(np.float64))
    fixed = ks_2samp(
        comparable_probabilities(native)["probability"],
        comparable_probabilities(served)["probability"],
    )
    assert (fixed.statistic, fixed.pvalue) == (0.0, 1.0)
