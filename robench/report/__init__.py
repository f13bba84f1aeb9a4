"""`robench report`: leaderboards from run folders. Imports no torch.

    tidy.py         every cell of every run folder in one pandas DataFrame, one row per run
    leaderboard.py  a Report from that table: mCE and the rest per evaluation, seeds grouped,
                    baseline columns, sorted and ranked; `write_report` is the verb
    stats.py        mean ± std, Student's t, paired and Welch 95 % intervals
    views.py        what a Report shows, as text: values, tables, titles, notes
    formats.py      how a report looks: md, csv, json, html, latex (FORMATS), `--out` by suffix
    html.py         the self-contained HTML page
    plots.py        matplotlib figures (PLOTS)
    robustbench.py  RobustBench model cards and unaggregated results
"""
