"""Everything a run folder holds, and how it is read and written. Imports no torch (checkpoints.py,
the one module that needs torch, is imported by name).

    results/<run>/config.yaml      the fully resolved TrainConfig
    results/<run>/checkpoint.pt    weights and what rebuilds the model           checkpoints.py
    results/<run>/metrics.csv      one row per epoch
    results/<run>/run.json         what was trained or evaluated, on what, how long
    results/<run>/eval/<dataset>-<source>.csv    one row per cell              cellstore.py
    results/<run>/eval/<dataset>-<source>.json   whose cells the CSV holds, every evaluation

    files.py        every file name above and the eval CSV's columns, atomic writes, reading and checking
    cellstore.py    the eval CSV as a store of finished cells under a file lock (resumable evals)
    staging.py      which folders a new run may replace, and replacing one via a staging folder
    checkpoints.py  saving and loading checkpoints (torch, weights_only)
"""
