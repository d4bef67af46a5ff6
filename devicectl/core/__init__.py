"""The service's core: supervisors, sessions, records, accounts and the audit log."""
