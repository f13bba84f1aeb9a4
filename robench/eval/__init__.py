"""`robench eval` and `robench.evaluate`: clean error, calibration and the error of every
(corruption, severity) cell.

    cell.py       a Cell (clean is one), the cells a spec asks for, the rule for "already done"
    sources.py    where a cell's images come from: clean, the released files, or generated
    loop.py       the one per-cell loop (CLI, Python API, torchrun) and `evaluate_run`, the verb
    subjects.py   what is evaluated: a run folder, or models robench did not train
    metrics.py    per-cell counts and calibration on the device (CellMetrics)
    api.py        the Python API: `robench.evaluate(model, ...)` -> DataFrame, `robench.summarize`

cell.py imports no torch, so the run-folder and report code can share it.
"""
