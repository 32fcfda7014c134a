"""``python -m twin.launch_server``: the twin with ``sglang.launch_server``'s command line."""

from __future__ import annotations

import sys

from twin import _args, _server


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the server.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0 after a normal stop, 1 when start-up failed (2 for bad arguments,
        raised by argparse as ``SystemExit``).
    """
    return _server.serve(_args.parse_argv(argv))


if __name__ == "__main__":
    sys.exit(main())
