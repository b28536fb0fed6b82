"""cdclake full_load DAG (see cdclake_dags/factory.py). Built from the pipeline config and the
[cdclake] Airflow settings; no I/O beyond reading those local files at parse time."""

from cdclake_dags.factory import build_full_load_dag
from cdclake_dags.settings import load_settings

dag = build_full_load_dag(load_settings())
