"""Command-line interface: thin modules that parse arguments, call the library and print."""
