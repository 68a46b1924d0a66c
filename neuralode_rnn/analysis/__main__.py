"""``python -m neuralode_rnn.analysis compare-solvers|analyze ...`` (see :mod:`.commands`)."""

import sys

from .commands import main

sys.exit(main())
