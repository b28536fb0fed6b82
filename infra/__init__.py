"""Infrastructure as code for the CDC lakehouse (AWS CDK in Python).

Everything that depends on the pipeline config (DMS endpoint settings, table mappings, Glue
database, per-table alarms) is generated from ``conf/pipeline.yaml`` through
:func:`cdclake.config.load_config`, so the job and the infrastructure cannot drift apart.
"""
