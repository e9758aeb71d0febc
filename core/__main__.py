"""Entry point for ``python -m core``."""

import sys

from core.cli import main

if __name__ == "__main__":  # not when a child process of the decoders imports it
    sys.exit(main())
