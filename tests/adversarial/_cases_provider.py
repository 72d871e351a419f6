from ._case import Cases

cases = Cases("provider")
CASES = cases.all
