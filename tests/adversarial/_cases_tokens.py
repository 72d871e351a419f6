from ._case import Cases

cases = Cases("tokens")
CASES = cases.all
