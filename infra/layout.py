"""Names and object keys shared by the stack, the packaging script, the tests and the DAGs.

Artifacts bucket ``<bucket_prefix>-artifacts``::

    jobs/cdc_merge.py            entry point (EMR Serverless sparkSubmit.entryPoint)
    jobs/cdc_maintenance.py      entry point of the daily maintenance job
    jobs/cdclake.zip             the cdclake package for --py-files (zip root holds cdclake/)
    conf/pipeline.yaml           deployable pipeline config (S3 roots); the job's --config
    conf/deployment.json         stack outputs (application id, role ARNs, ...) after deploy
    dags/<files from dags/>      MWAA DAG folder (synced to the workers)
    dags/cdclake/                the job package too: the DAGs parse the config and register
                                 the catalog with it on the workers (no Spark needed there)
    dags/cdclake_conf/pipeline.yaml   same config, read by the DAGs from local disk at parse time
    dags/cdclake_conf/deployment.json same outputs, read by the DAGs from local disk
    mwaa/requirements.txt        MWAA's requirements (constraints line + pinned providers, pyarrow)
    athena-results/              Athena workgroup query results (expire after 30 days)

Raw bucket ``<bucket_prefix>-raw``: DMS writes under ``dms/<schema>/<table>/``.
Curated bucket ``<bucket_prefix>-curated``: Delta tables under ``lake/<schema>/<table>/``,
bookkeeping under ``lake/_cdclake/``. Logs bucket ``<bucket_prefix>-logs``: S3 access logs
under ``s3-access/<bucket>/``, EMR Serverless logs under ``emr/``.
"""

from __future__ import annotations

from dataclasses import dataclass

JOB_ENTRY_KEY = "jobs/cdc_merge.py"
JOB_PACKAGE_KEY = "jobs/cdclake.zip"
MAINTENANCE_ENTRY_KEY = "jobs/cdc_maintenance.py"
RECONCILE_ENTRY_KEY = "jobs/cdc_reconcile.py"
DAG_PACKAGE_PREFIX = "dags/cdclake"
JOB_CONFIG_KEY = "conf/pipeline.yaml"
DEPLOYMENT_KEY = "conf/deployment.json"
DAGS_PREFIX = "dags"
DAG_CONFIG_KEY = "dags/cdclake_conf/pipeline.yaml"
DAG_DEPLOYMENT_KEY = "dags/cdclake_conf/deployment.json"
MWAA_REQUIREMENTS_KEY = "mwaa/requirements.txt"
ATHENA_RESULTS_PREFIX = "athena-results"

RAW_FOLDER = "dms"  # DMS BucketFolder
CURATED_FOLDER = "lake"
EMR_LOGS_PREFIX = "emr"
ACCESS_LOGS_PREFIX = "s3-access"


@dataclass(frozen=True)
class Buckets:
    """The four bucket names of one environment (global names: choose a unique prefix)."""

    prefix: str

    @property
    def raw(self) -> str:
        return f"{self.prefix}-raw"

    @property
    def curated(self) -> str:
        return f"{self.prefix}-curated"

    @property
    def artifacts(self) -> str:
        return f"{self.prefix}-artifacts"

    @property
    def logs(self) -> str:
        return f"{self.prefix}-logs"

    @property
    def raw_root(self) -> str:
        """``raw_root`` of the deployable pipeline config."""
        return f"s3://{self.raw}/{RAW_FOLDER}"

    @property
    def curated_root(self) -> str:
        """``curated_root`` of the deployable pipeline config."""
        return f"s3://{self.curated}/{CURATED_FOLDER}"

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"
