"""cdclake: DMS change files -> ordered, deduplicated, idempotent MERGE into Delta tables.

Which part runs where:

- ``job/`` (the merge job) and ``lake/`` (bookkeeping, table upkeep, maintenance): Spark, on
  EMR Serverless or local Spark; entry points ``jobs/cdc_merge.py`` and ``cdc_maintenance.py``.
- ``catalog/``: Glue/Athena/Spectrum registration, DDL and validation SQL; no Spark, runs on
  Airflow workers (MWAA) and laptops.
- ``cli/``: the command lines, one scaffold; ``core/``: config, column names, DMS layout,
  hours, URIs and run records, imported by all of the above and by the DAGs and the stack.
- ``session.py``: the one place a Spark session is built (profiles ``local`` and ``emr``).

Dependencies point one way: ``cli`` -> ``job`` -> ``lake`` -> ``core``; ``catalog`` -> ``core``.
The local stand-ins for the source (``demo/``, ``capture/``) live outside this package.
"""
