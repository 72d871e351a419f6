from ._case import Cases

cases = Cases("slow")
CASES = cases.all
