"""Recipes: the YAML schema, loading with located errors, and resolution of defaults and `auto` values."""
