"""PostgreSQL change capture in AWS DMS's S3/Parquet format: the local stand-in for DMS.

``python -m capture init`` sets up a publication and a logical replication slot (built-in
``pgoutput``) and writes the full load; ``python -m capture stream`` writes the changes as DMS
CDC files; ``python -m capture drop`` removes the slot and publication. The Spark job reads the
output exactly as it reads DMS's. See capture/README.md.

Modules, in the order data flows: ``source`` (connections, table checks), ``load`` (init:
slot, snapshot, LOAD files), ``pgoutput`` (protocol decoder), ``changes`` (messages -> DMS
rows), ``typemap`` (PostgreSQL types -> Parquet), ``files`` (DMS layout, durable writes),
``state`` (position), ``stream`` (the loop, flushes), ``status`` (health), ``cli``;
``pgcluster`` (a throwaway server for tests and ``make run``) and ``bench`` (throughput).
"""
