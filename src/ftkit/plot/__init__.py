"""Curves as pictures: a terminal sparkline (`ftkit show`) and a self-contained SVG/HTML chart (`ftkit plot`)."""
