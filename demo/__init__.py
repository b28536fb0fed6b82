"""``make run``: the local sources that stand in for a production source database + AWS DMS,
and the driver that runs the Airflow DAGs on them (``python -m demo.run_demo``).

* PostgreSQL (the default): :mod:`demo.pgsource` (a throwaway cluster on a settable clock, the
  blog's tables), :mod:`demo.workload` (real transactions hour by hour, every hard case) and
  :mod:`demo.pgdemo` (the drive: capture full load, hourly runs, a late file, a backfill);
  the capture itself is ``capture/``.
* Synthetic: :class:`DemoSource` (:mod:`demo.generator`, :mod:`demo.scenario`) writes DMS-shaped
  Parquet files (chunked full load, cached changes, late files, duplicate deliveries, an added
  column) and knows the exact source state the lake must reach.

Both end with :mod:`demo.compare`: every lake table, read through Spark SQL over the local
catalog, against the source; :mod:`demo.dagrun` runs the DAGs with ``dag.test()``.
"""

from demo.generator import Delivery, DemoSource
from demo.scenario import HardCase

__all__ = ["Delivery", "DemoSource", "HardCase"]
