"""The command line: a thin layer that parses, calls the library, prints, and maps errors to exit codes."""
