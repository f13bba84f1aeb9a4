"""Where the tests find the repository and ../shared (golden files, frost photographs), written once.

Import it as `from locations import ROOT, SHARED` (never from conftest: with a conftest.py in a
sub-folder too, `conftest` names whichever was imported first)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the clone
SHARED = ROOT.parent / "shared"  # ../shared beside the clone
