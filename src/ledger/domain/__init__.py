"""The ledger's domain: aggregates, their events and the rules they enforce.

Nothing here touches a database; the application service loads and saves.
"""
