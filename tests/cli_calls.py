"""Driving the CLI in this process (Typer's CliRunner), shared by the CLI-level tests."""

from typer.testing import CliRunner

from robench.cli import app

runner = CliRunner()
# A training that takes a second or two on the CPU, offline.
TINY = ["--dataset", "shapes10", "--model", "small-cnn", "--epochs", "2", "--batch-size", "64",
        "--train-limit", "256", "--test-limit", "100", "--lr", "0.05"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, pattern: str):
    """The promise for a user mistake: exit 2, one line on stderr naming it, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), result.stderr
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in result.output
