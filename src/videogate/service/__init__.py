"""The service layer: what the HTTP surfaces and the CLI call. No HTTP here."""
