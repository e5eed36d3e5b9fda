"""Code from other projects, kept with its licence header (see each file)."""
