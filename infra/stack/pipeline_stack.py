"""The stack of one environment, ``CdcLake-<env>``, from ``conf/env/<env>.yaml`` and the
pipeline config: the parts README "What it creates" lists, wired together.

Storage, Dms and Monitoring keep their resources in their own scope. The other parts create
theirs in the stack's scope, where they were before the stack was split into constructs: a
new scope would change their logical IDs, and a deployed stack would replace those resources.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Stack
from constructs import Construct

from cdclake.core.config import PipelineConfig
from infra import layout, runtime
from infra.envconf import EnvConfig
from infra.stack import access
from infra.stack.boundary import Boundary
from infra.stack.catalog import Catalog
from infra.stack.dms import Dms
from infra.stack.emr import Emr
from infra.stack.logstore import DeltaLogStore
from infra.stack.monitoring import Monitoring
from infra.stack.mwaa import Mwaa, environment_name
from infra.stack.network import Network
from infra.stack.secret import SourceSecret
from infra.stack.storage import Storage


class PipelineStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, env_cfg: EnvConfig, cfg: PipelineConfig, **kw
    ) -> None:
        super().__init__(scope, cid, **kw)
        env = self.env_cfg = env_cfg
        self.cfg = cfg
        self.storage = st = Storage(self, "Storage", env=env)
        self.network = net = Network(self, "Network", env=env)
        self.source = SourceSecret(self, "SourceSecret", env=env, key=st.key, network=net)
        self.dms = Dms(
            self,
            "Dms",
            env=env,
            cfg=cfg,
            key=st.key,
            raw=st.raw,
            secret=self.source.secret,
            security_group=net.dms_sg,
            log_retention_days=env.retention.log_group_days,
        )
        self.log_store = DeltaLogStore(self, "DeltaLogStore", env=env, key=st.key)
        self.emr = Emr(
            self,
            "Emr",
            env=env,
            storage=st,
            network=net,
            glue_database=cfg.glue_database,
            log_store=self.log_store,
        )
        self.catalog = Catalog(
            self,
            "Catalog",
            env=env,
            database=cfg.glue_database,
            key=st.key,
            results_bucket=st.artifacts,
        )
        # Before MWAA: failed tasks publish to its topic. (Logical IDs do not depend on order.)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            env=env,
            cfg=cfg,
            key=st.key,
            emr_application_id=self.emr.application_id,
            dms_instance_id=self.dms.instance_id,
            dms_task_id=self.dms.task_id,
            mwaa_environment=environment_name(env) if env.mwaa.enabled else None,
        )
        self.mwaa = Mwaa(
            self,
            "Mwaa",
            env=env,
            storage=st,
            network=net,
            emr=self.emr,
            dms_task_arn=self.dms.task_arn,
            catalog=self.catalog,
            alarm_topic=self.monitoring.topic,
        )
        self.boundary = Boundary(self, "PermissionsBoundary", env=env)
        # Last: it reads every role and policy of the stack, the boundary's included.
        access.acknowledge_wildcards(self)
        self._outputs()

    def _outputs(self) -> None:
        st, b = self.storage, self.env_cfg.buckets
        values = {
            "RawBucket": st.raw.bucket_name,
            "CuratedBucket": st.curated.bucket_name,
            "ArtifactsBucket": st.artifacts.bucket_name,
            "LogsBucket": st.logs.bucket_name,
            "KmsKeyArn": st.key.key_arn,
            "EmrApplicationId": self.emr.application_id,
            "EmrJobRoleArn": self.emr.job_role.role_arn,
            "EmrLogUri": self.emr.log_uri,
            "EmrReleaseLabel": runtime.emr_release(),
            "JobEntryPoint": b.uri(b.artifacts, layout.JOB_ENTRY_KEY),
            "JobConfigUri": b.uri(b.artifacts, layout.JOB_CONFIG_KEY),
            "SparkSubmitParameters": runtime.spark_submit_parameters(
                b.uri(b.artifacts, layout.JOB_PACKAGE_KEY),
                self.log_store.table_name,
                self.log_store.region,
            ),
            "DeltaLogTable": self.log_store.table.table_name,
            "DmsTaskArn": self.dms.task_arn,
            "SourceSecretArn": self.source.secret.secret_arn,
            "GlueDatabase": self.catalog.database_name,
            "AthenaWorkGroup": self.catalog.workgroup_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "MwaaExecutionRoleArn": self.mwaa.role.role_arn,
            "Region": Aws.REGION,
        }
        for k, v in values.items():
            CfnOutput(self, f"Out{k}", value=v, key=k)
