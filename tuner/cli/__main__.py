"""``python -m tuner.cli``: the ``autotuner`` command."""

import sys

from tuner.cli import main

sys.exit(main())
