"""``python -m jax_lstm.cli``: the same as the ``jax-lstm`` command."""

import sys

from jax_lstm.cli import main

sys.exit(main())
