"""Entry point of the daily maintenance job (EMR Serverless ``entryPoint``; locally ``python``
or ``spark-submit``, same arguments). See ``cdclake/cli/maintenance.py``."""

import sys

from cdclake.cli.maintenance import main

if __name__ == "__main__":
    sys.exit(main())
