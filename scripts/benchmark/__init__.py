"""The ledger's benchmark (issue 7): the database's limits, the ledger against them, one run.

Run it with `scripts/bench [--quick] [--json FILE]`; see `benchmark.main` for the phases.
"""
