"""The ``liaison`` command line: one entry point for operators and partners."""
