"""Entry point of the CDC merge job (EMR Serverless ``entryPoint``; locally ``python`` or
``spark-submit``, same arguments). See ``cdclake/cli/merge.py`` for the arguments."""

import sys

from cdclake.cli.merge import main

if __name__ == "__main__":
    sys.exit(main())
