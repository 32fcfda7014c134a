"""``python -m twin``: see ``twin._cli``."""

from __future__ import annotations

import sys

from twin import _cli

if __name__ == "__main__":
    sys.exit(_cli.main())
