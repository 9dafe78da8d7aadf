"""The ftkit command line. Nothing outside this package imports it."""
