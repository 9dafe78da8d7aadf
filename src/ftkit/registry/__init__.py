"""The git-tracked run registry (see `ftkit.registry.store` for the layout and the choices behind it).

Imports only the standard library and `ftkit.errors`, so listing, showing and diffing runs never loads torch.
Modules: store (RunRegistry, RunRecord), gitops (plumbing and compare-and-swap), refs (ids, names, references),
diff (pure comparisons and CI gates), artifacts (content-addressed weights), scrub (secrets), environment
(env.json), yamlish (the YAML subset used for resolved.yaml).
"""
