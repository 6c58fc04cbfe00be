"""The ``cellvision`` command."""
