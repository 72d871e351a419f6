from ._case import Cases

cases = Cases("bombs")
CASES = cases.all
