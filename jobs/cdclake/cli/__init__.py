"""Command lines, all on one scaffold (:mod:`cdclake.cli.scaffold`): ``merge`` (the hourly and
full-load job), ``maintenance``, ``catalog``, ``query`` and ``sqlgen``."""
