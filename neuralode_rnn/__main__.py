"""``python -m neuralode_rnn ...`` is ``neuralode-rnn ...``."""

import sys

from .cli import main

sys.exit(main())
