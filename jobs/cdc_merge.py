"""Entry point of the CDC merge job (EMR Serverless ``entryPoint``; locally ``python`` or
``spark-submit``, same arguments). See ``cdclake/cli.py`` for the arguments."""

import sys

from cdclake.cli import main

if __name__ == "__main__":
    sys.exit(main())
