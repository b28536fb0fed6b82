"""CloudWatch metrics from a run's audit records (namespace ``CdcLake``, dimension ``Table``).

The infrastructure alarms on these: ``FreshnessSeconds`` (age of the newest change applied to
the table, published every run so a quiet or stuck pipeline is visible), ``QuarantinedRows``
and ``TableRunFailed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

log = logging.getLogger(__name__)
NAMESPACE = "CdcLake"
# Metric names: the infrastructure alarms import these, so the two cannot drift apart.
FRESHNESS, QUARANTINED, FAILED = "FreshnessSeconds", "QuarantinedRows", "TableRunFailed"


def metric_data(
    records: Iterable[dict], now: datetime, newest: Mapping[str, datetime | None]
) -> list[dict]:
    """The PutMetricData entries for the records. ``newest``: per table, the newest change
    applied so far (used when this run applied nothing)."""
    data = []
    for rec in records:
        dims = [{"Name": "Table", "Value": rec["table"]}]
        failed = rec["status"] == "failed"
        data.append(
            {
                "MetricName": FAILED,
                "Dimensions": dims,
                "Value": float(failed),
                "Unit": "Count",
                "Timestamp": now,
            }
        )
        data.append(
            {
                "MetricName": QUARANTINED,
                "Dimensions": dims,
                "Value": float(rec.get("quarantined") or 0),
                "Unit": "Count",
                "Timestamp": now,
            }
        )
        latest = rec.get("newest_change_ts") or newest.get(rec["table"])
        if latest is not None and not failed:
            data.append(
                {
                    "MetricName": FRESHNESS,
                    "Dimensions": dims,
                    "Value": max(0.0, (now - latest).total_seconds()),
                    "Unit": "Seconds",
                    "Timestamp": now,
                }
            )
    return data


def publish(
    records: list[dict], now: datetime, newest: Mapping[str, datetime | None], client=None
) -> None:
    """Send the metrics (in batches CloudWatch accepts)."""
    import boto3

    cw = client or boto3.client("cloudwatch")
    data = metric_data(records, now, newest)
    for i in range(0, len(data), 500):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 500])
    log.info("published %d metric value(s) to CloudWatch namespace %s", len(data), NAMESPACE)
