"""Catalog registration and SQL generation, Spark-free (runs on Airflow workers): the Delta log
read without Spark, Glue documents and DDL, validation queries, the Spectrum-style read."""
