"""The ``orbwatch`` command: a thin shell whose commands map one-to-one onto library calls."""
