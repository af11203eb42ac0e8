"""The deploy library: configuration, command builders, targets and workflows.

Tasks in ``tasks/`` parse arguments and call into this package; nothing here reads
command-line arguments or prints task help.
"""
