"""`Dims`: the sizes a model takes from its data rather than its config, as one value.

A dataset knows its own (`Dataset.dims`, `WindowDataset.dims`); a checkpoint records them; a state
dict's shapes give them back (`ModelEntry.read_state_dict`). numpy-free, JAX-free.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Dims", "SeriesSizes"]


@dataclasses.dataclass(frozen=True)
class Dims:
    """The sizes a model takes from its data.

    ``num_outputs`` is the width of the model's last layer: the classes of a classifier, H * T for a
    forecaster of H steps of T targets, whose ``output_shape`` (H, T) says how the width folds into
    one sample's output. A state dict holds only the width, so dims read off one have no shape.
    """

    # F: input channels; 0 where not known (a state dict of a model none of whose parameters depend
    # on it: the 2-D MDLSTM's cells each see one value of the (T, F) grid).
    num_features: int
    num_outputs: int  # classes (classifiers), horizon * targets (forecasters)
    output_shape: tuple[int, ...] | None = None  # one sample's output, e.g. (H, T); None: (num_outputs,)
    # T: the series' (padded) length. Models whose parameters depend on it (the FCN models' LSTM steps
    # over the variables, each step a whole series) read it; 0 where it is not known (a state dict of
    # a model that does not depend on it).
    seq_len: int = 0

    def __post_init__(self) -> None:
        if self.output_shape is not None and math.prod(self.output_shape) != self.num_outputs:
            raise ValueError(
                f"output_shape {self.output_shape} does not hold num_outputs {self.num_outputs} values"
            )


class SeriesSizes:
    """The sizes every dataset reads off its training inputs x_train (N, T, F) (a mixin of
    `Dataset` and `WindowDataset`)."""

    x_train: object  # (N, T, F)

    @property
    def num_features(self) -> int:
        """F: input channels (variables)."""
        return int(self.x_train.shape[-1])

    @property
    def seq_len(self) -> int:
        """T: the series' padded length, a window's length L (every split has the same)."""
        return int(self.x_train.shape[1])
