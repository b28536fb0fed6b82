"""Entry point of catalog registration (runs wherever boto3 runs). See
``cdclake/cli/catalog.py``."""

import sys

from cdclake.cli.catalog import main

if __name__ == "__main__":
    sys.exit(main())
