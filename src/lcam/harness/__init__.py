"""Experiment harness: config -> data -> model -> training loop -> metrics files.

Optional layer on top of the optimizer; see ``docs/ARCHITECTURE.md`` for the modules
and the run-directory contract.
"""
