"""The merge job (Spark; runs on EMR Serverless or local Spark), one module per step in the
order of a table's run: ``files`` (choose files) -> ``read`` (read + validate) -> ``decide``
(order, dedupe, classify: a :class:`~cdclake.job.decide.BatchPlan`) -> ``drift`` (fit the batch
to the table) -> ``apply`` (quarantine, tombstones, MERGE or overwrite, ledger) ; ``run`` calls
them in that order."""
