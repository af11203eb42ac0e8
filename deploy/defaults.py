"""Values the tasks' flags show in their help (a default, a limit) that the library owns.

This module imports nothing, so that `inv --list` and `inv --help TASK` load it and no
other module of the library (tests/unit/test_cli_startup.py holds them to that). The
modules that use these values import them from here.
"""

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"  # the ACME directory of deploy.stack.acme (inv tls.issue --server)
MIN_REVERT_AFTER = 10  # seconds: deploy.stack.firewall's room for the confirmation's new connection (inv hosts.firewall --revert-after)
