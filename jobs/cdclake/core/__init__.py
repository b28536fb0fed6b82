"""Shared names and pure helpers every part uses: the pipeline config, the bookkeeping columns
and statuses, DMS's file layout, hours and URIs, the run records. No pyspark, no boto3 at
import time: this package runs on EMR, on Airflow workers and on a laptop alike."""
