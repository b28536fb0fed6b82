from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cdclake.core.metrics import NAMESPACE, metric_data, publish

NOW = datetime(2026, 11, 22, 11, 5, tzinfo=UTC)


def rec(table, status="succeeded", newest=None, quarantined=0):
    return {
        "table": table,
        "status": status,
        "newest_change_ts": newest,
        "quarantined": quarantined,
    }


def by_name(data, table):
    return {d["MetricName"]: d["Value"] for d in data if d["Dimensions"][0]["Value"] == table}


def test_metric_values_per_table():
    data = metric_data(
        [
            rec("s.a", newest=NOW - timedelta(minutes=10), quarantined=2),
            rec("s.b", status="noop"),  # nothing new: freshness from what was applied before
            rec("s.c", status="failed"),
        ],
        NOW,
        {"s.b": NOW - timedelta(hours=2), "s.c": NOW - timedelta(hours=1)},
    )
    assert by_name(data, "s.a") == {
        "TableRunFailed": 0.0,
        "QuarantinedRows": 2.0,
        "FreshnessSeconds": 600.0,
    }
    assert by_name(data, "s.b")["FreshnessSeconds"] == 7200.0
    # a failed run publishes no freshness: the value would look healthy while nothing moves
    assert by_name(data, "s.c") == {"TableRunFailed": 1.0, "QuarantinedRows": 0.0}


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_publish_reaches_cloudwatch(moto_url):
    cw = boto3.client(
        "cloudwatch",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    publish([rec("s.a", newest=NOW - timedelta(minutes=1))], NOW, {}, client=cw)
    names = {m["MetricName"] for m in cw.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert names == {"TableRunFailed", "QuarantinedRows", "FreshnessSeconds"}
