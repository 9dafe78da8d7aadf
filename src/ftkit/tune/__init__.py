"""`ftkit tune`: a recipe generated from a data file and a model (task, format, columns, `auto` values), trained by
the same runner as `ftkit run`. `detect` decides the task and format; `recipe` builds the recipe. No torch here."""
