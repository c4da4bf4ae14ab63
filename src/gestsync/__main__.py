"""`python -m gestsync`: the same as the `gestsync` command."""

import sys

from .cli import main

if __name__ == "__main__":  # guarded: pose worker processes re-import the main module
    sys.exit(main())
