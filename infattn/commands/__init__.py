"""Subcommands of the ``infattn`` console command (see :mod:`infattn.cli`)."""
