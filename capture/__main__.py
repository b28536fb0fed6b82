"""``python -m capture``: see :mod:`capture.cli`."""

import sys

from capture.cli import main

sys.exit(main())
