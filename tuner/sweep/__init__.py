"""``infertune sweep``: tune models, then evaluate a models x datasets x modes grid.

The pipeline, one module per role: :mod:`source` (read YAML/TOML with lines),
:mod:`spec` (check the whole file), :mod:`models` (can a model load here),
:mod:`jobs` (grid -> jobs -> command lines), :mod:`manifest` (job states, safe
across processes), :mod:`execute` (one job as a subprocess), :mod:`runner`
(tune, then evaluate), :mod:`ray_backend` (fan out), :mod:`summary` (table,
CSV, markdown, plot).
"""
