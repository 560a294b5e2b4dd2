"""jc-datalad: scientific data challenges as DataLad datasets.

Every challenge is a versioned DataLad dataset; every leaderboard entry is a
sandboxed re-execution of a participant's recorded ``datalad containers-run``
on hidden data, with a complete provenance record.
"""

__version__ = "0.1.0"
