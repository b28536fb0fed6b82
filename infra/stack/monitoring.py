"""Alarms (to one SNS topic) and a dashboard: job failures and duration, DMS task state and
CDC latency, per-table freshness, quarantined rows and failed table runs, and the MWAA
scheduler's heartbeat. Failed Airflow tasks publish to the same topic (the DAGs' notifier).

The per-table metrics are published by the job (namespace ``CdcLake``, dimension ``Table`` =
``schema.table``): ``FreshnessSeconds``, ``QuarantinedRows``, ``TableRunFailed``.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dms as dms
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from cdclake.core.config import PipelineConfig
from cdclake.core.metrics import FAILED, FRESHNESS, QUARANTINED
from infra.envconf import EnvConfig
from infra.stack.access import JOB_METRIC_NAMESPACE


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        env: EnvConfig,
        cfg: PipelineConfig,
        key: kms.IKey,
        emr_application_id: str,
        dms_instance_id: str,
        dms_task_id: str,
        mwaa_environment: str | None = None,
    ) -> None:
        super().__init__(scope, cid)
        mon = env.monitoring
        self.topic = sns.Topic(
            self, "Alarms", topic_name=env.resource_name("alarms"), master_key=key, enforce_ssl=True
        )
        if mon.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(mon.alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

        def alarm(
            cid_: str,
            metric: cw.IMetric,
            threshold: float,
            desc: str,
            *,
            op: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            periods: int = 1,
            missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                cid_,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=op,
                treat_missing_data=missing,
                alarm_description=desc,
            )
            a.add_alarm_action(action)
            a.add_ok_action(action)
            self.alarms.append(a)
            return a

        # Per table, from the job's audit record.
        table_widgets: list[cw.IWidget] = []
        for t in cfg.tables:
            dims = {"Table": t.qualified_name}
            cid_t = "".join(p.title() for p in t.qualified_name.replace(".", "_").split("_"))
            fresh = cw.Metric(
                namespace=JOB_METRIC_NAMESPACE,
                metric_name=FRESHNESS,
                dimensions_map=dims,
                statistic="Maximum",
                period=Duration.hours(1),
            )
            quarantined = cw.Metric(
                namespace=JOB_METRIC_NAMESPACE,
                metric_name=QUARANTINED,
                dimensions_map=dims,
                statistic="Sum",
                period=Duration.hours(1),
            )
            failed = cw.Metric(
                namespace=JOB_METRIC_NAMESPACE,
                metric_name=FAILED,
                dimensions_map=dims,
                statistic="Maximum",
                period=Duration.hours(1),
            )
            alarm(
                f"Freshness{cid_t}",
                fresh,
                mon.freshness_seconds,
                f"{t.qualified_name}: newest applied change older than {mon.freshness_seconds}s, "
                "or no run published freshness this hour",
                missing=cw.TreatMissingData.BREACHING,
            )
            alarm(
                f"Quarantined{cid_t}",
                quarantined,
                mon.quarantined_rows,
                f"{t.qualified_name}: rows quarantined "
                "(see <curated_root>/_cdclake/<schema>/<table>/quarantine)",
            )
            alarm(
                f"RunFailed{cid_t}",
                failed,
                1,
                f"{t.qualified_name}: the table's batch failed",
                op=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
            table_widgets.append(
                cw.GraphWidget(
                    title=f"{t.qualified_name}", width=8, left=[fresh], right=[quarantined, failed]
                )
            )

        # EMR Serverless: Metrics Insights queries match every dimension set that carries the
        # application id (releases >= 7.10 add ApplicationName/JobName dimensions).
        def emr_query(metric: str, fn: str) -> cw.MathExpression:
            # CloudWatch Metrics Insights, not SQL; the id is the stack's own application.
            query = (
                f'SELECT {fn}({metric}) FROM "AWS/EMRServerless" '  # noqa: S608 # nosec B608
                f"WHERE ApplicationId = '{emr_application_id}'"
            )
            return cw.MathExpression(
                expression=query,
                period=Duration.minutes(1),
                label=metric,
                using_metrics={},
            )

        failed_jobs, running_jobs = emr_query("FailedJobs", "SUM"), emr_query("RunningJobs", "MAX")
        alarm(
            "EmrJobFailed",
            failed_jobs,
            1,
            "EMR Serverless: a job run failed",
            op=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        alarm(
            "EmrJobTooLong",
            running_jobs,
            1,
            f"EMR Serverless: a job has been running for {mon.job_running_minutes} minutes "
            "(hourly runs are overrunning)",
            op=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            periods=mon.job_running_minutes,
        )
        # Every failed or cancelled run, with its id, straight from EMR Serverless events.
        events.Rule(
            self,
            "EmrJobFailedEvent",
            description="EMR Serverless job run failed or was cancelled",
            event_pattern=events.EventPattern(
                source=["aws.emr-serverless"],
                detail_type=["EMR Serverless Job Run State Change"],
                detail={"applicationId": [emr_application_id], "state": ["FAILED", "CANCELLED"]},
            ),
            targets=[targets.SnsTopic(self.topic)],
        )

        # DMS: latency alarms; no data means the task is not running, which is an alarm too.
        latency: list[cw.IMetric] = []
        for side in ("Source", "Target"):
            m = cw.Metric(
                namespace="AWS/DMS",
                metric_name=f"CDCLatency{side}",
                statistic="Maximum",
                period=Duration.minutes(5),
                dimensions_map={
                    "ReplicationInstanceIdentifier": dms_instance_id,
                    "ReplicationTaskIdentifier": dms_task_id,
                },
            )
            latency.append(m)
            alarm(
                f"DmsCdcLatency{side}",
                m,
                mon.cdc_latency_seconds,
                f"DMS CDC latency ({side.lower()}) above {mon.cdc_latency_seconds}s, or the task "
                "is not running (no data)",
                periods=3,
                missing=cw.TreatMissingData.BREACHING,
            )
        # Task state changes and failures, from DMS itself.
        dms.CfnEventSubscription(
            self,
            "DmsTaskEvents",
            subscription_name=env.resource_name("dms-task-events"),
            sns_topic_arn=self.topic.topic_arn,
            source_type="replication-task",
            source_ids=[dms_task_id],
            event_categories=["failure", "state change"],
            enabled=True,
        )

        if mwaa_environment:
            # MWAA publishes the scheduler's heartbeat to AmazonMWAA (dimensions Function,
            # Environment); no heartbeat for 5 minutes, or no data, means no DAG is scheduled
            # (as aws-samples/mwaa-dashboard alarms on it).
            alarm(
                "MwaaSchedulerHeartbeat",
                cw.Metric(
                    namespace="AmazonMWAA",
                    metric_name="SchedulerHeartbeat",
                    dimensions_map={"Function": "Scheduler", "Environment": mwaa_environment},
                    statistic="Average",
                    period=Duration.minutes(5),
                ),
                0,
                f"MWAA {mwaa_environment}: no scheduler heartbeat for 5 minutes: no DAG runs",
                op=cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
                missing=cw.TreatMissingData.BREACHING,
            )

        cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=env.resource_name("pipeline"),
            widgets=[
                [cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24)],
                [
                    cw.GraphWidget(title="DMS CDC latency (s)", left=latency, width=12),
                    cw.GraphWidget(
                        title="EMR Serverless jobs", left=[running_jobs, failed_jobs], width=12
                    ),
                ],
                table_widgets,
            ],
        )
