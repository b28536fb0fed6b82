"""Entry point of the reconciliation check (EMR Serverless ``entryPoint``; locally ``python``
or ``spark-submit``, same arguments). See ``cdclake/cli/reconcile.py``."""

import sys

from cdclake.cli.reconcile import main

if __name__ == "__main__":
    sys.exit(main())
