"""Names of the bookkeeping columns, the change statuses and the quarantine reasons.

Plain strings (no pyspark): the job, the catalog's SQL and the DAGs spell them from here.

The order of a change is the tuple ``(commit timestamp, change sequence, source file, row
position)``, stored on every live row as the ``_cdc_*`` columns so later batches can tell
whether they are newer.
"""

from __future__ import annotations

# Column names the job adds to every table; a source column may not use the prefix.
BOOKKEEPING_PREFIX = "_cdc_"

OP = "_cdc_op"
COMMIT_TS = "_cdc_commit_ts"
CHANGE_SEQ = "_cdc_change_seq"
SOURCE_FILE = "_cdc_source_file"
ROW_POS = "_cdc_row_pos"
ORDER_COLUMNS = (COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, ROW_POS)
# Columns every lake table carries after the source's own columns.
BOOKKEEPING_COLUMNS = (OP, *ORDER_COLUMNS)
# A history (SCD type 2) table's columns after the source's own: the version's interval
# [valid from, valid to) (``_valid_to`` null while current) and whether it is current; then
# the bookkeeping columns of the newest change the version holds. No source column may use
# these names on a table that keeps a history.
VALID_FROM = "_valid_from"
VALID_TO = "_valid_to"
IS_CURRENT = "_is_current"
HISTORY_COLUMNS = (VALID_FROM, VALID_TO, IS_CURRENT)
# Working columns of a batch (never written to a table).
REASON = "_cdc_reason"
RECORD = "_cdc_record"
STATUS = "_cdc_status"
SEQ_WIDTH = 35  # $AR_H_CHANGE_SEQ: 16-digit timestamp + 19-digit counter

# Status of each winning change against what the lake already holds.
INSERT, UPDATE, DELETE, DELETE_ABSENT, STALE = (
    "insert",
    "update",
    "delete",
    "delete_absent",
    "stale",
)
# Statuses that change the table.
EFFECTIVE = (INSERT, UPDATE, DELETE)

# Reasons a row is quarantined instead of applied.
NULL_KEY = "null_key"
UNKNOWN_OP = "unknown_op"
BAD_TIMESTAMP = "unparseable_timestamp"


def target_column(partition: str) -> str:
    """Where a classified change carries the partition value its key has in the table today."""
    return f"{BOOKKEEPING_PREFIX}t_{partition}"


def data_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The source's columns among ``columns`` (no source column may start with ``_cdc_``:
    config and input checks enforce it), so working columns never leak into a table."""
    return [c for c in columns if not c.startswith(BOOKKEEPING_PREFIX)]
