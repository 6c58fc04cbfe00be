"""The library's studies as code that reads top to bottom: one module per study."""
