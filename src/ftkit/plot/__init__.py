"""Curves as pictures: a terminal sparkline (`ftkit show`), and `ftkit plot`'s chart as self-contained SVG/HTML or PNG."""
