"""The ``va-launch`` command line."""
