"""The lake's own tables and their upkeep (Spark): the bookkeeping kept beside every table
(ledger, tombstones, quarantine, audit), the lake table's settings and manifests, the change
order stored on its rows, and the daily maintenance."""
