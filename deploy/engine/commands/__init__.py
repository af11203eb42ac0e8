"""Pure command builders: each function returns an argv list and does no I/O."""
