"""`python -m gestsync`: the same as the `gestsync` command."""

import sys

from .cli import main

sys.exit(main())
