"""Local stand-in for the source database and AWS DMS.

:class:`DemoSource` writes DMS-shaped Parquet files (full load, hourly CDC folders, cached
changes, late files, duplicate deliveries, an added column) for the tables of the pipeline
config, and knows the exact source state the lake must reach. See :mod:`cdclake.demo.generator`
for the API and :mod:`cdclake.demo.scenario` for what happens when.
"""

from demo.generator import Delivery, DemoSource
from demo.scenario import HardCase

__all__ = ["Delivery", "DemoSource", "HardCase"]
