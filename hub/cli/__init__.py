"""The ``glasplade`` command: thin entry points that parse, call the application, render."""
