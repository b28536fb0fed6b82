"""Support package of the cdclake DAGs: settings, pure planning functions, and the task
builders of the two targets (``aws``: MWAA + EMR Serverless + DMS + Athena; ``local``: the demo
source, local ``spark-submit`` and Spark SQL). The DAG files next to this package are thin."""
