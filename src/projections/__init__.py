"""Read models (CQRS): pure folds over the ledger's events, written to SQL tables.

`projections` imports the ledger's events only; `api` wires the two together.
"""
