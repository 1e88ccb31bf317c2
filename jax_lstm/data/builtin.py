"""The built-in datasets: the article's synthetic data, scikit-learn's digits, and JapaneseVowels.

None of them downloads anything: JapaneseVowels ships inside the package (``jax_lstm/datasets``),
digits with scikit-learn, and the synthetic data is drawn from the seed.
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from jax_lstm.data.dataset import Dataset
from jax_lstm.data.ts import TsData, from_ts_data, load_ts

__all__ = ["ARTICLE_DEFAULTS", "digits", "japanese_vowels", "japanese_vowels_ts", "synthetic"]

# The article's 10 epochs of batches of 32 (section 3.2), for its synthetic data and for digits.
ARTICLE_DEFAULTS = {"epochs": 10, "batch_size": 32}


def _split(x, y, seed: int, lengths=None):
    from sklearn.model_selection import train_test_split

    arrays = [x, y] if lengths is None else [x, y, lengths]
    parts = train_test_split(*arrays, test_size=0.2, random_state=seed)
    return parts


def synthetic(
    seed: int = 0,
    num_samples: int = 1000,
    seq_len: int = 20,
    num_features: int = 5,
    num_classes: int = 2,
    split_seed: int = 42,
) -> Dataset:
    """The article's data (section 3.1): Gaussian noise (1000, 20, 5) with random binary labels.

    Split with ``train_test_split(test_size=0.2, random_state=42)`` as in the article. There is
    nothing to learn in it: test accuracy hovers around chance.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_samples, seq_len, num_features)).astype(np.float32)
    # The article's `.astype(np.long)`: np.long is gone from numpy >= 1.24, int64 is what it meant.
    y = rng.integers(0, num_classes, size=num_samples).astype(np.int64)
    x_train, x_test, y_train, y_test = _split(x, y, split_seed)
    classes = tuple(str(c) for c in range(num_classes))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, classes, defaults=dict(ARTICLE_DEFAULTS))


def digits(split_seed: int = 42) -> Dataset:
    """scikit-learn's 8x8 handwritten digits read as 8 timesteps (rows) of 8 features, 10 classes.

    Pixel values 0..16 are scaled to [0, 1]. Ships with scikit-learn: no download.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = _split(x, y, split_seed)
    classes = tuple(str(c) for c in range(10))
    return Dataset("digits", x_train, y_train, x_test, y_test, classes, defaults=dict(ARTICLE_DEFAULTS))


def japanese_vowels_ts() -> tuple[TsData, TsData]:
    """The embedded JapaneseVowels train and test files as read (series of different lengths,
    string labels "1".."9"), e.g. for `LSTMSequenceClassifier.fit(train.series, train.labels)`."""
    root = importlib.resources.files("jax_lstm") / "datasets"
    with (
        importlib.resources.as_file(root / "JapaneseVowels_TRAIN.ts.gz") as train,
        importlib.resources.as_file(root / "JapaneseVowels_TEST.ts.gz") as test,
    ):
        return load_ts(train), load_ts(test)


def japanese_vowels(standardize: bool = True) -> Dataset:
    """The UEA JapaneseVowels benchmark, shipped inside the package (no download).

    9 speakers (classes), 12 LPC cepstrum channels, lengths 7 to 29, 270 train / 370 test series
    (Kudo, Toyama and Shimbo 1999; UEA multivariate archive, Bagnall et al. 2018), standardised
    per channel with statistics of the training split.
    """
    return from_ts_data(*japanese_vowels_ts(), standardize)
