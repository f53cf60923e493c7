"""The message ledger: every hub decision and each recipient copy's lifecycle, in PostgreSQL."""
