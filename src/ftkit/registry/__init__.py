"""The git-tracked run registry (see `ftkit.registry.store` for the layout and the choices behind it).

Imports only the standard library, GitPython, PyYAML and ftkit's dependency-free helpers (errors, hashing,
suggest, yamlio), so listing, showing and diffing runs never loads torch. Modules: store (RunRegistry: open, commit,
load, list), opening (opening and creating a registry folder), damage (unreadable objects, named for people),
records (RunRecord and the files of a run folder, both ways), evals (evaluation records, `evals/<run-id>/<eval-id>/`),
summaries (the summary cache behind `ftkit runs`), tags, sync (remotes, push, pull), gitops (git access through GitPython, compare-and-swap), refs
(ids, names, references), diff (pure comparisons and CI gates), artifacts (content-addressed weights), scrub
(secrets), environment (env.json), paths (where ftkit may write: not into the registry, safe checkout names).
"""
