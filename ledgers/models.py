"""The ledgers (台账, DESIGN §6): built with the ledger work."""
